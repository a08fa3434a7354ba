"""The parts of a :class:`~torchvae.HierarchicalVAE`'s ladder: a layer's record, the
precision-weighted merge of Gaussians, their KL and draws, and what a prior sees of the
model (its top layer)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_ints
from ..gaussian import GaussianParams
from .encoders import Encoder

if TYPE_CHECKING:
    from .hierarchical import HierarchicalVAE

__all__ = [
    "LatentLayer",
    "TopLayer",
    "draw",
    "gaussian_head",
    "gaussian_kl",
    "hidden_sizes",
    "merge",
]

_LOG_2PI = math.log(2.0 * math.pi)


class LatentLayer(NamedTuple):
    r"""One stochastic layer of a path through a :class:`HierarchicalVAE` (bottom first).

    Shapes are ``(*k, batch, d_l)`` for the samples and parameters and ``(*k, batch)`` for
    the log-densities, ``k`` the number of samples per example when one was asked for (the
    top layer's ``q`` has no ``k``: it depends on :math:`x` alone).

    Attributes:
        z: the sample (or the location, on a deterministic path) :math:`z_l`.
        q: :math:`q_\phi(z_l \mid z_{l+1}, x)` (the top layer: :math:`q_\phi(z_L \mid x)`).
        p: :math:`p_\theta(z_l \mid z_{l+1})`; ``None`` for the top layer, whose prior is
            the model's ``prior``.
        log_q: :math:`\log q(z_l \mid \cdot)` at ``z``.
        log_p: :math:`\log p(z_l \mid z_{l+1})` (the top layer: :math:`\log p(z_L)`).
        kl: the layer's KL per example: in closed form given the layer above, or the
            Monte Carlo estimate ``log_q - log_p`` where the prior has no closed form.
        kl_per_dim: the closed-form KL per dimension, or ``None`` where there is none.
    """

    z: Tensor
    q: GaussianParams
    p: GaussianParams | None
    log_q: Tensor
    log_p: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None


def merge(up: GaussianParams, p: GaussianParams) -> GaussianParams:
    r"""Precision weighting: :math:`\sigma_q^{-2} = \hat\sigma^{-2} + \sigma_p^{-2}`."""
    log_var = -torch.logaddexp(-up.log_var, -p.log_var)
    # The weight of the bottom-up mean, sigma_up^-2 / (sigma_up^-2 + sigma_p^-2).
    weight = torch.sigmoid(p.log_var - up.log_var)
    return GaussianParams(p.mean + weight * (up.mean - p.mean), log_var)


def gaussian_kl(q: GaussianParams, p: GaussianParams) -> Tensor:
    r"""The KL of two diagonal Gaussians, :math:`\mathrm{KL}(q \,\|\, p)`, per dimension."""
    ratio = q.log_var - p.log_var
    # expm1(r) - r >= 0 exactly; rounding near r = 0 could make it negative, hence the clamp.
    spread = (torch.expm1(ratio) - ratio).clamp_min(0.0)
    return 0.5 * (spread + (q.mean - p.mean).square() * torch.exp(-p.log_var))


def draw(
    q: GaussianParams,
    n_samples: int | None,
    generator: torch.Generator | None,
    location: bool,
    noise: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """A reparameterized sample of ``q`` (or its mean) and its log-density."""
    if location:
        return q.mean, -0.5 * (q.log_var + _LOG_2PI).sum(-1)
    if noise is None:
        shape = q.mean.shape if n_samples is None else (n_samples, *q.mean.shape)
        kw: dict[str, Any] = {} if generator is None else {"generator": generator}
        noise = torch.randn(shape, dtype=q.mean.dtype, device=q.mean.device, **kw)
    z = q.mean + q.std * noise
    return z, -0.5 * (noise.square() + q.log_var + _LOG_2PI).sum(-1)


def gaussian_head(block: Encoder, h: Tensor) -> tuple[Tensor, GaussianParams]:
    """A block's hidden layers, then its mean and log-variance heads."""
    h = block.hidden(h)
    return h, GaussianParams(block.mean(h), block.log_var(h))


class TopLayer:
    """What the prior sees of the model when it is bound: the top stochastic layer."""

    num_classes = None

    def __init__(self, model: HierarchicalVAE) -> None:
        self._model = model
        self.latent_dim = model.latent_dims[-1]
        self.data_shape = model.data_shape
        self.likelihood = model.likelihood
        self.posterior_head = model.posterior_head
        self.data_range = model.likelihood.data_range

    def encode_trusted(self, x: Tensor, y: Tensor | None = None) -> GaussianParams:
        return self._model.encode_trusted(x, y)


def hidden_sizes(hidden_dims: object, layers: int) -> tuple[tuple[int, ...], ...]:
    if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
        raise TypeError(f"hidden_dims must be a sequence of sequences of ints, got {hidden_dims!r}")
    if len(hidden_dims) != layers:
        raise ValueError(
            f"hidden_dims must give one sequence of hidden sizes per stochastic layer "
            f"({layers}, as latent_dims), got {len(hidden_dims)}"
        )
    out = []
    for i, sizes in enumerate(hidden_dims):
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TypeError(f"hidden_dims[{i}] must be a sequence of ints, got {sizes!r}")
        out.append(check_positive_ints(sizes, f"hidden_dims[{i}]") if len(sizes) else ())
    return tuple(out)
