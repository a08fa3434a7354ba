r"""The KL and the active units of each stochastic layer of a :class:`~torchvae.HierarchicalVAE`.

For layer :math:`l` over a data set of :math:`N` examples:

.. math::
    \mathrm{KL}_l = \frac1N \sum_n \mathbb{E}_{q(z_{l+1:L} \mid x_n)}
    \mathrm{KL}\!\left(q(z_l \mid z_{l+1}, x_n) \,\|\, p(z_l \mid z_{l+1})\right),
    \qquad
    A_{l,u} = \operatorname{Var}_{x}\!\left(\mathbb{E}_{q(z \mid x)}[z_{l,u}]\right) > 0.01,

the top layer's KL against the prior :math:`p(z_L)` (closed form, or a Monte Carlo
estimate). The KLs sum to the model's total KL, the ELBO's second term. Below the top, the
posterior mean of a layer has no closed form (it depends on the layers above); it is
estimated as :math:`\frac1S \sum_s \mu_{q,l}(z^{(s)}_{l+1}, x)` over :math:`S` samples of
the layers above, which is unbiased and, for the activity test, close to exact for
:math:`S \geq 16` (the top layer's is :math:`\hat\mu_L(x)`, exact).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int, check_real
from ..models.hierarchical import HierarchicalVAE
from ._pass import Data, Moments, batches_of, evaluating

__all__ = ["LayerReport", "layer_report"]


class LayerReport(NamedTuple):
    r"""What :func:`layer_report` returns; one entry per layer, bottom (nearest :math:`x`) first.

    Attributes:
        kl: the mean KL of each layer, nats; their sum is the model's mean KL.
        kl_per_dim: each layer's mean KL per dimension, ``(d_l,)`` float64; ``None`` for a
            top layer whose prior has no closed-form KL.
        active_units: the number of active dimensions of each layer.
        au_variances: each layer's :math:`\operatorname{Var}_x \mathbb{E}_q[z_{l,u}]`,
            ``(d_l,)`` float64.
        n_examples: how many examples were read.
    """

    kl: tuple[float, ...]
    kl_per_dim: tuple[Tensor | None, ...]
    active_units: tuple[int, ...]
    au_variances: tuple[Tensor, ...]
    n_examples: int

    @property
    def latent_dims(self) -> tuple[int, ...]:
        """The size of each layer."""
        return tuple(int(v.shape[0]) for v in self.au_variances)

    def scalars(self) -> dict[str, float]:
        """Named numbers (``kl_1``, ``active_units_1``, ... layer 1 at the bottom)."""
        out: dict[str, float] = {}
        for i, (kl, au) in enumerate(zip(self.kl, self.active_units, strict=True), start=1):
            out[f"kl_{i}"], out[f"active_units_{i}"] = kl, float(au)
        return out

    def __str__(self) -> str:
        return "; ".join(
            f"layer {i}: active units {au}/{d}, KL {kl:.2f} nats"
            for i, (au, d, kl) in enumerate(
                zip(self.active_units, self.latent_dims, self.kl, strict=True), start=1
            )
        )


def layer_report(
    model: HierarchicalVAE,
    data: Data,
    *,
    threshold: float = 0.01,
    n_samples: int = 16,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> LayerReport:
    r"""The KL and the active units (Burda et al., 2016) of every layer over ``data``.

    Args:
        model: a :class:`~torchvae.HierarchicalVAE`.
        data: at least two examples: a tensor ``(N, ...)``, a ``Dataset`` or an iterable
            of batches (``x`` or ``(x, y, ...)``; labels are ignored).
        threshold: the variance above which a dimension counts as active.
        n_samples: :math:`S`, samples of the layers above per example, for the lower
            layers' posterior means and KLs.
        batch_size: examples at once, for tensor data and datasets.
        generator: optional random generator for the samples.

    Returns:
        A :class:`LayerReport`.

    Raises:
        TypeError: ``model`` is not a :class:`~torchvae.HierarchicalVAE`, or ``data`` is
            of the wrong type.
        ValueError: fewer than two examples, or bad options.

    Example:
        >>> model = HierarchicalVAE(6, (3, 2), ((8,), (8,)))
        >>> report = layer_report(model, torch.rand(50, 6))
        >>> report.latent_dims, len(report.kl)
        ((3, 2), 2)
    """
    if not isinstance(model, HierarchicalVAE):
        raise TypeError(
            f"layer_report needs a HierarchicalVAE, got {type(model).__name__} (for a "
            f"one-layer VAE use latent_report)"
        )
    threshold = check_real(threshold, "threshold")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite float >= 0, got {threshold}")
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    levels = len(model.latent_dims)
    moments = [Moments() for _ in range(levels)]
    kl_sums: list[Tensor | None] = [None] * levels
    kl_totals = [0.0] * levels
    device = model._like_params()[0]
    with evaluating(model):
        for x, _ in batches_of(data, None, batch_size):
            layers = model.infer(x.to(device), n_samples, generator)
            for i, layer in enumerate(layers):
                mean = layer.q.mean
                moments[i].update(mean if mean.ndim == 2 else mean.mean(0))
                # Lower layers (and a Monte Carlo top layer) carry the S samples in front.
                kl = layer.kl.double()
                kl_totals[i] += float(kl.sum()) / (n_samples if kl.ndim == 2 else 1)
                if layer.kl_per_dim is not None:
                    per_dim = layer.kl_per_dim.double()
                    scale = n_samples if per_dim.ndim == 3 else 1
                    per_dim = per_dim.reshape(-1, per_dim.shape[-1]).sum(0) / scale
                    summed = kl_sums[i]
                    kl_sums[i] = per_dim if summed is None else summed + per_dim
    n = moments[0].n
    if n < 2:
        raise ValueError(f"data must hold at least 2 examples for layer_report, got {n}")
    variances = tuple(m.variance() for m in moments)
    return LayerReport(
        kl=tuple(kl / n for kl in kl_totals),
        kl_per_dim=tuple(None if s is None else s / n for s in kl_sums),
        active_units=tuple(int((v > threshold).sum()) for v in variances),
        au_variances=variances,
        n_examples=n,
    )
