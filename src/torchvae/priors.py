r"""Priors :math:`p(z)` (and :math:`p(z \mid y)` for a conditional model) as modules.

Every prior is an ``nn.Module`` that the :class:`~torchvae.VAE` holds and binds to its
latent size when it is built (``VAE(..., prior=VampPrior(500))``); calling it gives the
distribution, and :meth:`Prior.log_prob` / :meth:`Prior.sample` are what training and
generation use:

- :class:`StandardNormal`: :math:`\mathcal{N}(0, I)`, the textbook's prior; closed-form KL
  against a diagonal Gaussian posterior.
- :class:`MixturePrior`: a learnable mixture of :math:`K` diagonal Gaussians,
  :math:`p(z) = \sum_k \pi_k\, \mathcal{N}(z; m_k, \operatorname{diag} s_k^2)`.
- :class:`VampPrior`: the variational mixture of posteriors (Tomczak & Welling, 2018),
  :math:`p(z) = \frac1K \sum_k q_\phi(z \mid u_k)` at :math:`K` learned pseudo-inputs.
- :class:`FlowPrior`: a normalizing flow on :math:`\mathcal{N}(0, I)` (needs zuko).

Priors other than the standard normal have no closed-form KL against the posterior, so the
objectives estimate it by Monte Carlo on the same samples,
:math:`\log q(z \mid x) - \log p(z)`.

Conditioned on a label :math:`y` (a model built with ``num_classes``), the standard normal
ignores it, the mixture learns weights :math:`\pi_k(y)` per class, the VampPrior gives each
pseudo-input a class and mixes those of :math:`y`, and the flow takes :math:`y`'s one-hot
code as its context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import (
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
    kl_divergence,
)

from ._flows import FlowKind, build_flow, require_zuko
from ._validation import check_generator, check_positive_int, check_positive_ints, check_real
from .gaussian import GaussianParams, _gaussian_kl
from .posteriors import DiagonalGaussian, Posterior

if TYPE_CHECKING:
    from .model import VAE

__all__ = ["FlowPrior", "MixturePrior", "Prior", "StandardNormal", "VampPrior"]

_LOG_2PI = math.log(2.0 * math.pi)
# Elements of the (rows, components, latent_dim) block scored at once by the mixtures.
_BLOCK = 1 << 22


def check_temperature(temperature: object) -> float:
    """``temperature`` as a finite float >= 0, else a ``ValueError``/``TypeError``."""
    t = check_real(temperature, "temperature")
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"temperature must be a finite float >= 0, got {t}")
    return t


def _rows(per_row: int) -> int:
    """How many rows of ``per_row`` elements fit a block."""
    return max(1, _BLOCK // max(1, per_row))


class Prior(nn.Module):
    """Base class of priors over a ``latent_dim``-dimensional :math:`z`.

    A subclass implements :meth:`forward`, :meth:`log_prob` and :meth:`sample`, and may
    override :meth:`kl_closed_form` and :meth:`bind` (which builds parameters that depend
    on the model: the latent size, the number of classes, the input shape).
    """

    latent_dim: int | None = None
    num_classes: int | None = None
    _like: Tensor

    def __init__(self, latent_dim: int | None = None) -> None:
        super().__init__()
        if latent_dim is not None:
            self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        # Where and in which dtype to make tensors; moves with the module, not saved.
        self.register_buffer("_like", torch.zeros(0), persistent=False)

    def bind(self, model: VAE) -> None:
        """Fix the latent size and the number of classes from ``model`` (once).

        Raises:
            ValueError: the prior was built for another latent size, or is already bound
                to another model.
        """
        if self.latent_dim is not None and self.latent_dim != model.latent_dim:
            raise ValueError(
                f"prior={type(self).__name__}(latent_dim={self.latent_dim}) differs from the "
                f"encoder's latent_dim={model.latent_dim}; build the prior with "
                f"latent_dim={model.latent_dim} or leave latent_dim out"
            )
        if getattr(self, "_bound", False):
            raise ValueError(
                f"this {type(self).__name__} already belongs to a model; give each model "
                f"its own prior"
            )
        self.latent_dim = model.latent_dim
        self.num_classes = model.num_classes
        self._bound = True

    @property
    def dim(self) -> int:
        """The latent size (after :meth:`bind`)."""
        if self.latent_dim is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a model yet")
        return self.latent_dim

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this prior (JSON values)."""
        return {}

    def forward(self, y: Tensor | None = None) -> Distribution:
        """:math:`p(z)` (or :math:`p(z \\mid y)`, batch shape ``(batch,)``) as a distribution."""
        raise NotImplementedError

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`\\log p(z)` for ``z`` ``(..., batch, latent_dim)``; labels ``y`` ``(batch,)``."""
        out: Tensor = self(y).log_prob(z)
        return out

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` draws ``(n, latent_dim)``; ``temperature`` scales the spread (1: the prior).

        Args:
            n: how many.
            y: labels ``(n,)`` for a conditional prior.
            temperature: :math:`t \\geq 0`; each prior says how it scales.
            generator: optional random generator on the prior's device.
        """
        raise NotImplementedError

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        """:math:`\\mathrm{KL}(q(z \\mid x) \\| p(z))` in closed form, or ``None``.

        Returns ``(batch, latent_dim)`` where the KL splits over dimensions, ``(batch,)``
        where it only has a total, ``None`` where no closed form is known (the objectives
        then estimate it by Monte Carlo). This default asks ``torch.distributions`` for a
        registered pair.
        """
        try:
            kl = kl_divergence(posterior(params), self(y))
        except NotImplementedError:
            return None
        return kl if isinstance(kl, Tensor) else None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


class StandardNormal(Prior):
    r"""The standard normal prior :math:`p(z) = \mathcal{N}(0, I)`.

    Against the diagonal Gaussian posterior the KL has the closed form of
    :func:`~torchvae.gaussian_kl`, per dimension. ``temperature`` :math:`t` samples
    :math:`\mathcal{N}(0, t^2 I)`.

    Args:
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.

    Example:
        >>> prior = StandardNormal(latent_dim=2)
        >>> prior().event_shape
        torch.Size([2])
    """

    def forward(self, y: Tensor | None = None) -> Independent[Normal]:
        zeros = self._like.new_zeros(self.dim if y is None else (y.shape[0], self.dim))
        return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return -0.5 * (z.square() + _LOG_2PI).sum(-1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        like = self._like
        check_generator(generator, like.device)
        z = torch.randn(n, self.dim, device=like.device, dtype=like.dtype, generator=generator)
        return z * temperature

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        if isinstance(posterior, DiagonalGaussian):
            return _gaussian_kl(params.mean, params.log_var)
        return None


def _diagonal_log_prob(z: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """``log N(z; m_k, s_k^2)`` for every component: ``(..., B, d)`` -> ``(..., B, K)``."""
    k, d = means.shape
    flat = z.reshape(-1, d)
    rows = _rows(k * d)
    inv = torch.exp(-log_scales)
    const = log_scales.sum(-1) + 0.5 * d * _LOG_2PI
    parts = [
        -0.5 * ((part[:, None, :] - means) * inv).square().sum(-1) - const
        for part in torch.split(flat, rows)
    ]
    return torch.cat(parts).reshape(*z.shape[:-1], k)


class MixturePrior(Prior):
    r"""A learnable mixture of diagonal Gaussians.

    .. math::
        p(z) = \sum_{k=1}^K \pi_k\, \mathcal{N}\!\left(z;\ m_k,\ \operatorname{diag} s_k^2\right)

    The means start as draws from :math:`\mathcal{N}(0, I)` (seeded by the global
    generator), the scales at 1 and the weights equal. Conditioned on a label :math:`y`
    the weights are learned per class, :math:`\pi_k(y)`, the components shared. The
    ``temperature`` :math:`t` scales every component's standard deviation.

    Args:
        n_components: :math:`K`.
        learn_weights: learn :math:`\pi` (otherwise fixed at :math:`1/K`).
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.

    Example:
        >>> prior = MixturePrior(n_components=3, latent_dim=2)
        >>> prior.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    logits: Tensor

    def __init__(
        self, n_components: int = 10, learn_weights: bool = True, latent_dim: int | None = None
    ) -> None:
        super().__init__(latent_dim)
        self.n_components = check_positive_int(n_components, "n_components")
        if not isinstance(learn_weights, bool):
            raise TypeError(f"learn_weights must be a bool, got {type(learn_weights).__name__}")
        self.learn_weights = learn_weights
        self.means: nn.Parameter | None = None
        if latent_dim is not None:
            self._build(self.dim, None)

    def _build(self, latent_dim: int, num_classes: int | None) -> None:
        k = self.n_components
        if self.means is None:
            self.means = nn.Parameter(torch.randn(k, latent_dim))
            self.log_scales = nn.Parameter(torch.zeros(k, latent_dim))
        rows = 1 if num_classes is None else num_classes
        if self.learn_weights:
            self.logits = nn.Parameter(torch.zeros(rows, k))
        else:
            self.register_buffer("logits", torch.zeros(rows, k))

    def bind(self, model: VAE) -> None:
        super().bind(model)
        self._build(self.dim, self.num_classes)

    def config(self) -> dict[str, Any]:
        return {"n_components": self.n_components, "learn_weights": self.learn_weights}

    def _parts(self) -> tuple[Tensor, Tensor]:
        if self.means is None:
            raise RuntimeError("MixturePrior is not bound to a model yet")
        return self.means, self.log_scales

    def _log_weights(self, y: Tensor | None) -> Tensor:
        return F.log_softmax(self.logits[0] if y is None else self.logits[y], dim=-1)

    def forward(self, y: Tensor | None = None) -> Distribution:
        means, log_scales = self._parts()
        weights = Categorical(logits=self._log_weights(y), validate_args=False)
        shape = (self.n_components,) if y is None else (y.shape[0], self.n_components)
        components = Independent(
            Normal(
                means.expand(*shape, -1), log_scales.exp().expand(*shape, -1), validate_args=False
            ),
            1,
        )
        return MixtureSameFamily(weights, components, validate_args=False)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        means, log_scales = self._parts()
        return torch.logsumexp(_diagonal_log_prob(z, means, log_scales) + self._log_weights(y), -1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        means, log_scales = self._parts()
        check_generator(generator, means.device)
        probs = self._log_weights(y).exp()
        which = torch.multinomial(probs.expand(n, -1), 1, generator=generator).squeeze(-1)
        eps = torch.randn(n, self.dim, device=means.device, dtype=means.dtype, generator=generator)
        return means[which] + temperature * log_scales[which].exp() * eps

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        return None


class VampPrior(Prior):
    r"""The VampPrior (Tomczak & Welling, 2018): a mixture of the model's own posteriors.

    .. math:: p(z) = \frac1K \sum_{k=1}^K q_\phi(z \mid u_k)

    at :math:`K` pseudo-inputs :math:`u_k`, learned with the model. They live in the data's
    space (the encoder's input shape) and, for data in a bounded range (the likelihood's
    ``data_range``, e.g. [0, 1]), are clipped to it by a hard tanh, as in the paper; they
    start at :math:`\mathcal{N}(0.05, 0.01^2)` scaled to that range (the paper's
    initialization; :math:`\mathcal{N}(0, 1)` for unbounded data). Each training step
    encodes the :math:`K` pseudo-inputs, so a step costs about :math:`1 + K/B` times the
    encoder's work at batch size :math:`B`.

    Conditioned on a label, pseudo-input :math:`k` belongs to class :math:`k \bmod C` and
    :math:`p(z \mid y)` mixes the posteriors of the pseudo-inputs of class :math:`y`
    (encoded with that label); :math:`K` must then be at least the number of classes. The
    ``temperature`` :math:`t` scales the chosen posterior's base standard deviation.

    Args:
        n_components: :math:`K`, the number of pseudo-inputs.
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.
    """

    pseudo_labels: Tensor

    def __init__(self, n_components: int = 500, latent_dim: int | None = None) -> None:
        super().__init__(latent_dim)
        self.n_components = check_positive_int(n_components, "n_components")
        self.pseudo_inputs: nn.Parameter | None = None
        self.bounds: tuple[float, float] | None = None
        self._owner: list[VAE] = []

    def bind(self, model: VAE) -> None:
        super().bind(model)
        shape = model.data_shape
        if shape is None:
            raise ValueError(
                "VampPrior needs the shape of the encoder's input, for its pseudo-inputs: give "
                "the encoder an int attribute input_dim or a tuple input_shape"
            )
        classes = self.num_classes
        if classes is not None and self.n_components < classes:
            raise ValueError(
                f"VampPrior(n_components={self.n_components}) needs at least one pseudo-input "
                f"per class, num_classes={classes}"
            )
        self.bounds = model.likelihood.data_range
        if self.bounds is None:
            init = torch.randn(self.n_components, *shape)
        else:
            low, high = self.bounds
            init = low + (high - low) * (0.05 + 0.01 * torch.randn(self.n_components, *shape))
        self.pseudo_inputs = nn.Parameter(init)
        labels = torch.arange(self.n_components) % (classes or 1)
        self.register_buffer("pseudo_labels", labels)
        self._owner = [model]  # a plain list: the encoder is the model's, not a submodule here

    def config(self) -> dict[str, Any]:
        return {"n_components": self.n_components}

    def components(self) -> GaussianParams:
        r"""The encoder's output at the pseudo-inputs, each ``(K, latent_dim)``."""
        if self.pseudo_inputs is None or not self._owner:
            raise RuntimeError("VampPrior is not bound to a model yet")
        u: Tensor = self.pseudo_inputs
        if self.bounds is not None:
            u = F.hardtanh(u, *self.bounds)
        labels = self.pseudo_labels if self.num_classes is not None else None
        return self._owner[0].encode_trusted(u, labels)

    def _log_weights(self, y: Tensor | None) -> Tensor:
        """``log pi_k``: uniform, or uniform over the pseudo-inputs of class ``y``."""
        k = self.n_components
        like = self._like
        if y is None:
            return like.new_full((k,), -math.log(k))
        member = self.pseudo_labels == y[:, None]
        count = member.sum(-1, keepdim=True).to(like.dtype)
        return torch.where(member, -count.log(), like.new_tensor(-math.inf))

    def forward(self, y: Tensor | None = None) -> Distribution:
        params = self.components()
        posterior = self._owner[0].posterior_head
        components = posterior(params)
        if y is not None:
            components = components.expand((y.shape[0], self.n_components))
        weights = Categorical(logits=self._log_weights(y), validate_args=False)
        return MixtureSameFamily(weights, components, validate_args=False)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        params = self.components()
        posterior = self._owner[0].posterior_head
        if isinstance(posterior, DiagonalGaussian):
            per = _diagonal_log_prob(z, params.mean, 0.5 * params.log_var)
        else:
            d = z.shape[-1]
            flat = z.reshape(-1, 1, d)
            rows = _rows(self.n_components * d * 16)  # room for the flow's hidden layers
            per = torch.cat(
                [posterior.log_prob(part, params) for part in torch.split(flat, rows)]
            ).reshape(*z.shape[:-1], self.n_components)
        return torch.logsumexp(per + self._log_weights(y), -1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        params = self.components()
        check_generator(generator, params.mean.device)
        probs = self._log_weights(None if y is None else y).exp()
        which = torch.multinomial(probs.expand(n, -1), 1, generator=generator).squeeze(-1)
        mean, log_var = params.mean[which], params.log_var[which]
        chosen = GaussianParams(mean, log_var)
        posterior = self._owner[0].posterior_head
        if temperature == 0:
            return posterior.location(chosen)
        scaled = GaussianParams(mean, log_var + 2.0 * math.log(temperature))
        return posterior.rsample_and_log_prob(scaled, None, generator)[0]

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        return None


class FlowPrior(Prior):
    r"""A normalizing flow on a standard normal: :math:`z = g(\varepsilon)`.

    .. math::
        \log p(z) = \log \mathcal{N}(f(z); 0, I)
        + \log\left|\det \frac{\partial f(z)}{\partial z}\right|, \qquad f = g^{-1}

    ``flow="maf"``: masked autoregressive transforms, whose density takes one pass (what
    training needs) and sampling ``latent_dim`` sequential passes; ``"realnvp"``: affine
    couplings, one pass both ways. The transforms start as the identity, so the prior
    starts as :math:`\mathcal{N}(0, I)`. Conditioned on a label, the flow takes its
    one-hot code as context. ``temperature`` :math:`t` scales :math:`\varepsilon`.

    Needs the optional dependency zuko (``pip install 'torchvae[flows]'``).

    Args:
        transforms: number of transforms.
        hidden_features: hidden sizes of each transform's network.
        flow: ``"maf"`` or ``"realnvp"``.
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.

    Raises:
        ImportError: zuko is not installed (the message names the extra).
    """

    def __init__(
        self,
        transforms: int = 3,
        hidden_features: Sequence[int] = (256, 256),
        flow: FlowKind = "maf",
        latent_dim: int | None = None,
    ) -> None:
        super().__init__(latent_dim)
        require_zuko("FlowPrior")
        self.transforms = check_positive_int(transforms, "transforms")
        self.hidden_features = check_positive_ints(hidden_features, "hidden_features")
        if flow not in ("maf", "realnvp"):
            raise ValueError(f"flow must be 'maf' or 'realnvp', got {flow!r}")
        self.flow_kind: FlowKind = flow
        self.flow: Any = None
        if latent_dim is not None:
            self._build(self.dim, 0)

    def _build(self, latent_dim: int, context: int) -> None:
        self.flow = build_flow(
            "FlowPrior", self.flow_kind, latent_dim, context, self.transforms, self.hidden_features
        )

    def bind(self, model: VAE) -> None:
        super().bind(model)
        if self.flow is None or self.num_classes is not None:
            self._build(self.dim, self.num_classes or 0)

    def config(self) -> dict[str, Any]:
        return {
            "transforms": self.transforms,
            "hidden_features": list(self.hidden_features),
            "flow": self.flow_kind,
        }

    def _context(self, y: Tensor | None, n: int | None = None) -> Tensor | None:
        if self.flow is None:
            raise RuntimeError("FlowPrior is not bound to a model yet")
        if self.num_classes is None:
            return None
        if y is None:
            raise ValueError("this FlowPrior is conditional: give the labels y")
        return F.one_hot(y, self.num_classes).to(self._like.dtype)

    def forward(self, y: Tensor | None = None) -> Distribution:
        context = self._context(y)
        dist: Distribution = self.flow() if context is None else self.flow(context)
        return dist

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        out: Tensor = self(y).log_prob(z)
        return out

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        like = self._like
        check_generator(generator, like.device)
        eps = torch.randn(n, self.dim, device=like.device, dtype=like.dtype, generator=generator)
        context = self._context(y)
        transform = self.flow.transform() if context is None else self.flow.transform(context)
        out: Tensor = transform.inv(eps * temperature)
        return out

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        return None
