r"""Diagonal Gaussians: the posterior q(z|x), the prior p(z) = N(0, I), and their KL.

A VAE's encoder outputs the parameters of a diagonal Gaussian

.. math::
    q_\phi(z \mid x) = \mathcal{N}\!\left(z;\ \mu_\phi(x),\
    \ \operatorname{diag}\sigma^2_\phi(x)\right),
    \qquad \log\sigma^2 = \texttt{log\_var},

and the prior is the standard normal :math:`p(z) = \mathcal{N}(0, I)`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from ._validation import check_finite, check_floating

__all__ = [
    "GaussianParams",
    "gaussian_kl",
    "standard_normal",
    "standard_normal_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianParams(NamedTuple):
    r"""Mean and log-variance of a diagonal Gaussian, as an encoder returns them.

    It unpacks like the textbook's ``mean, log_var = encoder(x)`` and can also give the
    distribution object :math:`q(z \mid x)`.

    Attributes:
        mean: :math:`\mu`, shape ``(batch, latent_dim)``.
        log_var: :math:`\log\sigma^2`, shape ``(batch, latent_dim)``.

    Example:
        >>> params = GaussianParams(torch.zeros(2, 3), torch.zeros(2, 3))
        >>> mean, log_var = params
        >>> params.distribution().event_shape
        torch.Size([3])
    """

    mean: Tensor
    log_var: Tensor

    @property
    def std(self) -> Tensor:
        r"""Standard deviation :math:`\sigma = \exp(\tfrac12 \log\sigma^2)`."""
        return torch.exp(0.5 * self.log_var)

    def distribution(self) -> Independent[Normal]:
        r"""The diagonal Gaussian as ``Independent(Normal(mean, std), 1)``."""
        return Independent(Normal(self.mean, self.std), 1)

    def rsample(
        self, n_samples: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Reparameterized samples :math:`z = \mu + \sigma \odot \varepsilon`.

        :math:`\varepsilon \sim \mathcal{N}(0, I)`, so gradients flow to the parameters.

        Args:
            n_samples: ``None`` for one sample of shape ``mean.shape``; ``k`` for ``k``
                samples stacked in a new leading dimension, shape ``(k, *mean.shape)``.
            generator: optional random generator on the parameters' device.

        Returns:
            Samples through which gradients flow to ``mean`` and ``log_var``.
        """
        shape = self.mean.shape if n_samples is None else (n_samples, *self.mean.shape)
        dtype, device = self.mean.dtype, self.mean.device
        # An explicit generator=None breaks torch.compile on batches of a new size.
        eps = (
            torch.randn(shape, dtype=dtype, device=device)
            if generator is None
            else torch.randn(shape, dtype=dtype, device=device, generator=generator)
        )
        return self.mean + self.std * eps

    def log_prob(self, z: Tensor) -> Tensor:
        r"""Log-density :math:`\log q(z)`, summed over the latent dimension.

        .. math::
            \log q(z) = -\tfrac12 \sum_j \left[\log 2\pi + \log\sigma_j^2
            + (z_j - \mu_j)^2 / \sigma_j^2\right]

        Args:
            z: shape ``(..., batch, latent_dim)``, broadcast against the parameters.

        Returns:
            Shape ``(..., batch)``.
        """
        # (z - mu) / sigma before squaring: exp(-log_var) alone overflows for a tiny sigma.
        sq = ((z - self.mean) * torch.exp(-0.5 * self.log_var)).square()
        return -0.5 * (sq + self.log_var + _LOG_2PI).sum(-1)

    def kl(self) -> Tensor:
        """KL divergence from the standard normal per dimension; see :func:`gaussian_kl`."""
        return gaussian_kl(self.mean, self.log_var)


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    r"""Closed-form KL divergence of :math:`\mathcal{N}(\mu, \sigma^2)` from the standard normal.

    Per latent dimension, in nats:

    .. math::
        \mathrm{KL}\left(\mathcal{N}(\mu,\sigma^2)\,\|\,\mathcal{N}(0,1)\right)
        = \tfrac12\left(\mu^2 + \sigma^2 - 1 - \log\sigma^2\right)

    Summed over dimensions this is the textbook's
    ``-0.5 * sum(1 + log_var - mean**2 - exp(log_var))``.

    Args:
        mean: :math:`\mu`, any shape.
        log_var: :math:`\log\sigma^2`, the same shape.

    Returns:
        The KL of each dimension, the same shape; never negative, and exactly zero
        where ``mean == 0`` and ``log_var == 0``. Where the exact value overflows the
        dtype (e.g. ``mean = 3e38`` in float32) it is ``inf``, never NaN.

    Raises:
        TypeError: ``mean`` or ``log_var`` is not a floating-point tensor.
        ValueError: their shapes or devices differ, or either holds NaN/inf.

    Example:
        >>> gaussian_kl(torch.zeros(2), torch.zeros(2))
        tensor([0., 0.])
    """
    mean = check_finite(check_floating(mean, "mean"), "mean")
    log_var = check_finite(check_floating(log_var, "log_var"), "log_var")
    if mean.shape != log_var.shape or mean.device != log_var.device:
        raise ValueError(
            f"mean and log_var must have the same shape and device, got {tuple(mean.shape)} "
            f"on {mean.device} and {tuple(log_var.shape)} on {log_var.device}"
        )
    return _gaussian_kl(mean, log_var)


def _gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """:func:`gaussian_kl` without the checks, for callers that made them."""
    # expm1(v) - v >= 0 in exact arithmetic; with 1 + v computed first, rounding can
    # make the float32 result slightly negative near v = 0, hence expm1 and the clamp.
    return 0.5 * (mean.square() + (torch.expm1(log_var) - log_var).clamp_min(0.0))


def standard_normal(
    latent_dim: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Independent[Normal]:
    r"""The prior :math:`p(z) = \mathcal{N}(0, I)`, event shape ``(latent_dim,)``."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    r"""Log-density of the standard normal, summed over the last dimension.

    .. math:: \log p(z) = -\tfrac12 \sum_j \left(z_j^2 + \log 2\pi\right)
    """
    return -0.5 * (z.square() + _LOG_2PI).sum(-1)
