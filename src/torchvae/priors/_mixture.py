"""A learnable mixture of diagonal Gaussians as the prior."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from .._validation import check_generator, check_positive_int
from ..gaussian import GaussianParams
from ..io.registry import register_by_arguments
from ..posteriors import Posterior
from ._base import _LOG_2PI, Prior, PriorOwner, rows_per_block

__all__ = ["MixturePrior", "diagonal_log_prob"]


def diagonal_log_prob(z: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    r"""``log N(z; m_k, s_k^2)`` for every component: ``(..., B, d)`` -> ``(..., B, K)``.

    The quadratic form is expanded into matrix products,

    .. math::
        -\tfrac12 \sum_j \frac{(z_j - m_{kj})^2}{s_{kj}^2}
        = -\tfrac12\, z^{2} \cdot s_k^{-2} + z \cdot \frac{m_k}{s_k^{2}}
          - \tfrac12\, m_k^2 \cdot s_k^{-2},

    so that a thousand importance samples against a 500-component prior cost two
    GEMMs instead of a ``(B, K, d)`` tensor. The expansion cancels large terms when
    :math:`|z| / s` is large, so it runs in float64 (except on MPS) and returns ``z``'s dtype.
    """
    k, d = means.shape
    flat = z.reshape(-1, d)
    # MPS has no float64; there the expansion runs in z's own dtype.
    work = z.dtype if z.device.type == "mps" else torch.promote_types(z.dtype, torch.float64)
    precision = torch.exp(-2.0 * log_scales.to(work))
    m = means.to(work)
    quadratic = (-0.5 * precision).T
    linear = (m * precision).T
    const = log_scales.to(work).sum(-1) + 0.5 * d * _LOG_2PI
    const = const + 0.5 * (m.square() * precision).sum(-1)
    parts = []
    for part in torch.split(flat, rows_per_block(k)):
        wide = part.to(work)
        out = torch.addmm(torch.addmm(-const, wide.square(), quadratic), wide, linear)
        parts.append(out.to(z.dtype))
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

    def bind(self, model: PriorOwner) -> None:
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
        return torch.logsumexp(diagonal_log_prob(z, means, log_scales) + self._log_weights(y), -1)

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


register_by_arguments(MixturePrior)
