"""A normalizing-flow prior (zuko, the ``flows`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from .._flows import FlowKind, build_flow, require_zuko
from .._validation import check_generator, check_positive_int, check_positive_ints
from ..gaussian import GaussianParams
from ..io.registry import register_by_arguments
from ..posteriors import Posterior
from ._base import Prior, PriorOwner

__all__ = ["FlowPrior"]


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

    def bind(self, model: PriorOwner) -> None:
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


register_by_arguments(FlowPrior)
