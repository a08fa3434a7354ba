r"""Variational posteriors :math:`q_\phi(z \mid x)`: what the encoder's output becomes.

The encoder returns the parameters ``(mean, log_var)`` of a diagonal Gaussian (the seed's
surface); a posterior module turns them into the distribution the VAE samples from:

- :class:`DiagonalGaussian` (the default): :math:`q(z \mid x) = \mathcal{N}(\mu,
  \operatorname{diag}\sigma^2)` itself, the textbook's posterior;
- :class:`FlowPosterior`: that Gaussian pushed through a normalizing flow conditioned on
  the encoder's output, :math:`z = f_x(z_0)`, :math:`z_0 \sim \mathcal{N}(\mu,
  \operatorname{diag}\sigma^2)`, so that

  .. math:: \log q(z \mid x) = \log \mathcal{N}(z_0; \mu, \sigma^2)
      - \log\left|\det \frac{\partial f_x(z_0)}{\partial z_0}\right|.

Calling a posterior on ``GaussianParams`` gives a ``torch.distributions`` object;
:meth:`Posterior.rsample_and_log_prob` draws reparameterized samples with their
log-density in one pass (with an optional generator), which is all the objectives need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from ._flows import FlowKind, build_flow, require_zuko
from ._validation import check_generator, check_positive_int, check_positive_ints
from .gaussian import GaussianParams
from .io.registry import register_by_arguments

__all__ = ["DiagonalGaussian", "FlowPosterior", "Posterior"]

_LOG_2PI = math.log(2.0 * math.pi)


def _standard_noise(
    params: GaussianParams, n_samples: int | None, generator: torch.Generator | None
) -> Tensor:
    mean = params.mean
    shape = mean.shape if n_samples is None else (n_samples, *mean.shape)
    # An explicit generator=None breaks torch.compile on batches of a new size.
    if generator is None:
        return torch.randn(shape, dtype=mean.dtype, device=mean.device)
    return torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)


def _gaussian_sample(
    params: GaussianParams, n_samples: int | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``z = mean + std * eps`` and its log-density under the diagonal Gaussian."""
    eps = _standard_noise(params, n_samples, generator)
    z = params.mean + params.std * eps
    log_q = -0.5 * (eps.square() + params.log_var + _LOG_2PI).sum(-1)
    return z, log_q


class Posterior(nn.Module):
    """Base class: maps the encoder's ``(mean, log_var)`` to :math:`q(z \\mid x)`.

    A subclass implements :meth:`forward`, :meth:`rsample_and_log_prob`, :meth:`log_prob`
    and :meth:`location`. :class:`~torchvae.VAE` calls :meth:`bind` once with the latent
    size, before any of them.
    """

    latent_dim: int | None = None

    def bind(self, latent_dim: int) -> None:
        """Fix the latent size (and build any parameters that depend on it)."""
        if self.latent_dim is not None and self.latent_dim != latent_dim:
            raise ValueError(
                f"{type(self).__name__} was built for latent_dim={self.latent_dim} but the "
                f"encoder gives latent_dim={latent_dim}"
            )
        self.latent_dim = latent_dim

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this posterior (JSON values)."""
        return {}

    def forward(self, params: GaussianParams) -> Distribution:
        """:math:`q(z \\mid x)` as a ``torch.distributions`` object, event ``(latent_dim,)``."""
        raise NotImplementedError

    def rsample_and_log_prob(
        self,
        params: GaussianParams,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Reparameterized samples and their :math:`\\log q(z \\mid x)`.

        Args:
            params: the encoder's output, each ``(batch, latent_dim)``.
            n_samples: ``None`` for one sample per example; ``k`` for ``k`` stacked in front.
            generator: optional random generator on the parameters' device.

        Returns:
            ``z`` of shape ``(*k, batch, latent_dim)`` and ``log q`` of shape ``(*k, batch)``.
        """
        raise NotImplementedError

    def log_prob(self, z: Tensor, params: GaussianParams) -> Tensor:
        """:math:`\\log q(z \\mid x)` at any ``z`` ``(..., batch, latent_dim)``, broadcast."""
        raise NotImplementedError

    def location(self, params: GaussianParams) -> Tensor:
        """A deterministic code for each example (the posterior mean where it is known)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


class DiagonalGaussian(Posterior):
    r"""The diagonal Gaussian :math:`q(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)`.

    The default posterior, with a closed-form KL against Gaussian priors.

    Example:
        >>> q = DiagonalGaussian()
        >>> q.bind(3)
        >>> z, log_q = q.rsample_and_log_prob(GaussianParams(torch.zeros(2, 3), torch.zeros(2, 3)))
        >>> z.shape, log_q.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    def forward(self, params: GaussianParams) -> Independent[Normal]:
        return params.distribution()

    def rsample_and_log_prob(
        self,
        params: GaussianParams,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        return _gaussian_sample(params, n_samples, generator)

    def log_prob(self, z: Tensor, params: GaussianParams) -> Tensor:
        return params.log_prob(z)

    def location(self, params: GaussianParams) -> Tensor:
        return params.mean


class FlowPosterior(Posterior):
    r"""A diagonal Gaussian pushed through a normalizing flow conditioned on the encoder.

    :math:`z_0 = \mu + \sigma \odot \varepsilon`, then :math:`z = f_c(z_0)` with
    :math:`c = [\mu, \log\sigma^2]`, the encoder's output, as the flow's context. With
    ``flow="maf"`` the transforms are masked autoregressive ones applied in their one-pass
    direction to :math:`z_0`: an inverse autoregressive flow (IAF; Kingma et al., 2016),
    in which sampling and the density of one's own samples take one pass, and the density
    of any other point (which a VampPrior or the mutual information needs) takes
    ``latent_dim`` sequential passes. ``flow="realnvp"`` uses affine couplings (Dinh et
    al., 2017), one pass both ways. Every transform starts as the identity, so the
    posterior starts as its Gaussian base. The KL to the prior is always estimated by
    Monte Carlo.

    Needs the optional dependency zuko (``pip install 'torchvae[flows]'``).

    Args:
        transforms: number of flow transforms.
        hidden_features: hidden sizes of each transform's network.
        flow: ``"maf"`` (inverse autoregressive, the default) or ``"realnvp"``.
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.

    Raises:
        ImportError: zuko is not installed (the message names the extra).
    """

    def __init__(
        self,
        transforms: int = 2,
        hidden_features: Sequence[int] = (256, 256),
        flow: FlowKind = "maf",
        latent_dim: int | None = None,
    ) -> None:
        super().__init__()
        require_zuko("FlowPosterior")
        self.transforms = check_positive_int(transforms, "transforms")
        self.hidden_features = check_positive_ints(hidden_features, "hidden_features")
        if flow not in ("maf", "realnvp"):
            raise ValueError(f"flow must be 'maf' or 'realnvp', got {flow!r}")
        self.flow_kind: FlowKind = flow
        self.flow: Any = None
        if latent_dim is not None:
            self.bind(check_positive_int(latent_dim, "latent_dim"))

    def bind(self, latent_dim: int) -> None:
        super().bind(latent_dim)
        if self.flow is None:
            self.flow = build_flow(
                "FlowPosterior",
                self.flow_kind,
                latent_dim,
                2 * latent_dim,
                self.transforms,
                self.hidden_features,
            )

    def config(self) -> dict[str, Any]:
        return {
            "transforms": self.transforms,
            "hidden_features": list(self.hidden_features),
            "flow": self.flow_kind,
        }

    def _transform(self, params: GaussianParams) -> Any:
        if self.flow is None:
            raise RuntimeError("FlowPosterior is not bound to a latent size; build the VAE first")
        return self.flow.transform(torch.cat([params.mean, params.log_var], dim=-1))

    def forward(self, params: GaussianParams) -> Distribution:
        zuko = require_zuko("FlowPosterior")
        # zuko's NormalizingFlow maps samples to the base with its transform; ours maps the
        # base to samples, hence the inverse.
        flow: Distribution = zuko.distributions.NormalizingFlow(
            self._transform(params).inv, params.distribution()
        )
        return flow

    def rsample_and_log_prob(
        self,
        params: GaussianParams,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_generator(generator, params.mean.device)
        z0, log_q0 = _gaussian_sample(params, n_samples, generator)
        z, ladj = self._transform(params).call_and_ladj(z0)
        return z, log_q0 - ladj

    def log_prob(self, z: Tensor, params: GaussianParams) -> Tensor:
        # A coupling writes into masked entries of its input, so z and the context must
        # already have their common shape.
        shape = torch.broadcast_shapes(z.shape, params.mean.shape)  # type: ignore[no-untyped-call]
        full = GaussianParams(params.mean.expand(shape), params.log_var.expand(shape))
        z0, ladj = self._transform(full).inv.call_and_ladj(z.expand(shape))
        log_q: Tensor = full.log_prob(z0) + ladj
        return log_q

    def location(self, params: GaussianParams) -> Tensor:
        """The flow applied to the base mean, :math:`f_c(\\mu)` (the mean has no closed form)."""
        out: Tensor = self._transform(params)(params.mean)
        return out


register_by_arguments(DiagonalGaussian)
register_by_arguments(FlowPosterior)
