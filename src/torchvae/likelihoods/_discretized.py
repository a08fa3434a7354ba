r"""Likelihoods for 8-bit images: the discretized logistic and its mixture (PixelCNN++).

An 8-bit value :math:`v \in \{0, \dots, 255\}` reaches a model as :math:`x = v / 255 \in
[0, 1]` (what torchvae's loaders give). These likelihoods put a *probability* on each of
the 256 values, the mass of the logistic :math:`F(t) = \sigma((t - \mu) / s)` on the value's
bin of width :math:`1/255`, with the two end bins open so that the masses sum to one
(Salimans et al., 2017):

.. math::
    P(x) = \begin{cases}
    F(x + \delta) & x = 0, \\
    F(x + \delta) - F(x - \delta) & 0 < x < 1, \\
    1 - F(x - \delta) & x = 1,
    \end{cases} \qquad \delta = \frac{1}{2 \cdot 255}.

Their :math:`-\log P(x)` is a code length: bits/dim are :math:`-\log P(x) / (D \ln 2)`,
the number papers report (no dequantization, no correction; see
:func:`~torchvae.bits_per_dim`). Targets must be 8-bit values :math:`v / 255`; dequantized
data is refused.

**In log space.** With :math:`a = (x + \delta - \mu)/s` and :math:`b = (x - \delta - \mu)/s`,
:math:`\sigma(a) - \sigma(b) = \sigma(a)\,\sigma(-b)\,(1 - e^{-(a - b)})`, so an inner bin has

.. math::
    \log P(x) = \log\sigma(a) + \log\sigma(-b) + \log\!\left(1 - e^{-1/(255 s)}\right),

three terms that are each finite and accurate for any :math:`\mu` and :math:`s` (no
difference of two nearly equal CDFs, no fallback to the density at the bin's centre).

**Parameters.** The decoder's outputs are unconstrained; a location output :math:`\ell`
gives :math:`\mu = \tfrac12 + \ell` (a zero output is mid-grey), clamped to
:math:`\ell \in [-10, 10]`, and log-scales are clamped to :math:`[-7 - \ln 2, 7]`
(PixelCNN++'s lower bound :math:`-7` on :math:`[-1, 1]`, in the units of :math:`[0, 1]`),
so that every value and gradient stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, constraints

from .._validation import (
    check_finite,
    check_floating,
    check_generator,
    check_positive_int,
    validation_enabled,
)
from ..io.registry import register_by_arguments
from . import _logistic as L
from ._base import Likelihood

__all__ = [
    "DiscretizedLogistic",
    "DiscretizedLogisticDistribution",
    "DiscretizedLogisticMixture",
    "DiscretizedLogisticMixtureDistribution",
]


def _check_eight_bit(x: Tensor, name: str, who: str) -> Tensor:
    x = check_finite(check_floating(x, name), name)
    if validation_enabled() and not bool(L.on_grid(x)):
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name} must lie in [0, 1] for {who} (8-bit values v / 255), got values in "
                f"[{lo:g}, {hi:g}]"
            )
        scaled = x * L.LEVELS
        off = (scaled - torch.round(scaled)).abs()
        example = float(x.flatten()[int(off.flatten().argmax())])
        raise ValueError(
            f"{name} must hold 8-bit values v / 255 for {who}, a discrete likelihood; got "
            f"{int((off > L.GRID_TOLERANCE).sum())} values off that grid (e.g. {example:.6g} "
            f"= {example * L.LEVELS:.4g} / 255). Dequantized data is for continuous "
            f"likelihoods: give the loader dequantize=False"
        )
    return x


class DiscretizedLogisticDistribution(Distribution):
    r"""Independent discretized logistics, one per value: what :class:`DiscretizedLogistic` gives.

    Args:
        loc: :math:`\mu` in data units, any shape.
        log_scale: :math:`\log s` in data units, broadcastable with ``loc``.
    """

    has_rsample = False

    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        return {}

    def __init__(self, loc: Tensor, log_scale: Tensor) -> None:
        self.loc, self.log_scale = L.broadcast(loc, log_scale)
        super().__init__(self.loc.shape, validate_args=False)

    @property
    def mean(self) -> Tensor:
        r""":math:`\mathbb{E}[x]`, exactly (a sum over the 255 inner bin edges)."""
        return L.expected_value(self.loc, self.log_scale)

    def log_prob(self, value: Tensor) -> Tensor:
        return L.log_mass(L.bin_index(value), self.loc, self.log_scale)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return L.draw(self.loc.expand(shape), self.log_scale.expand(shape), None)


class _EightBit(Likelihood):
    """Base of the discrete likelihoods: targets are 8-bit values v / 255 in [0, 1]."""

    discrete = True

    def validate_target(self, x: Tensor, name: str = "x") -> Tensor:
        return _check_eight_bit(x, name, f"a {type(self).__name__} likelihood")

    def target_ok(self, x: Tensor) -> Tensor:
        return L.on_grid(x)


def _image_shape(data_shape: Sequence[int], who: str) -> tuple[int, int, int]:
    shape = tuple(data_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(
            f"{who} models images (channels, height, width), got data shape {shape}: "
            f"pass x as (batch, C, H, W), to an encoder with an input_shape (ConvEncoder, "
            f"ResNetEncoder)"
        )
    return shape[0], shape[1], shape[2]


class DiscretizedLogistic(_EightBit):
    r"""Discretized logistic likelihood for 8-bit data, one logistic per value.

    .. math::
        \log p(x \mid z) = \sum_i \log P\!\left(x_i;\ \mu_i = \tfrac12 + \ell_i,\ s_i\right)

    with :math:`P` the logistic's mass on the bin of :math:`x_i` (see the module). The
    decoder gives the location outputs :math:`\ell`; the scale is one learned (or fixed)
    :math:`s` shared by every value, or, with ``predict_scale=True``, predicted per value:
    the decoder then gives :math:`2C` channels for images ``(C, H, W)``, the locations
    first, and :math:`\log s_i = \log s + \ell'_i` (so that :math:`s_i \approx s` at
    initialization).

    Args:
        scale: :math:`s` (its initial value when learned; the offset of the predicted ones).
        learn_scale: learn :math:`\log s` as a parameter (the default).
        predict_scale: the decoder predicts a log-scale per value (images only).

    Example:
        >>> x = torch.tensor([[0.0, 128 / 255, 1.0]])
        >>> DiscretizedLogistic(scale=0.1, learn_scale=False).log_prob(torch.zeros(1, 3), x)
        tensor([-14.5996])
    """

    def __init__(
        self, scale: float = 0.1, learn_scale: bool = True, predict_scale: bool = False
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"scale must be a positive float, got {type(scale).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite float, got {scale}")
        for name, flag in (("learn_scale", learn_scale), ("predict_scale", predict_scale)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.initial_scale = float(scale)
        self.learn_scale, self.predict_scale = learn_scale, predict_scale
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def config(self) -> dict[str, Any]:
        return {
            "scale": self.initial_scale,
            "learn_scale": self.learn_scale,
            "predict_scale": self.predict_scale,
        }

    def params_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """``data_shape``; with ``predict_scale``, ``(2C, H, W)`` for images ``(C, H, W)``."""
        if not self.predict_scale:
            return tuple(data_shape)
        c, h, w = _image_shape(data_shape, "DiscretizedLogistic(predict_scale=True)")
        return (2 * c, h, w)

    def _loc_scale(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, log_scale)`` in data units, each the data's shape (broadcast)."""
        offset = self.log_scale.to(logits.dtype)
        if not self.predict_scale:
            return L.location(logits), L.log_scale(offset)
        if logits.ndim < 3 or logits.shape[-3] % 2:
            raise ValueError(
                f"DiscretizedLogistic(predict_scale=True) needs logits (..., 2C, H, W), "
                f"got shape {tuple(logits.shape)}"
            )
        loc, log_scale = logits.chunk(2, dim=-3)
        return L.location(loc), L.log_scale(log_scale + offset)

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        logits, x = L.full_precision(logits, x)
        loc, log_scale = self._loc_scale(logits)
        return L.log_mass(L.bin_index(x), loc, log_scale)

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        return DiscretizedLogisticDistribution(*self._loc_scale(logits))

    def mean(self, logits: Tensor) -> Tensor:
        r"""The exact mean :math:`\mathbb{E}[x \mid z]`, the data's shape.

        :math:`\sum_v \frac{v}{255} P(v) = \frac{1}{255}\sum_{i=1}^{255} \sigma((\mu -
        (i - \frac12)/255)/s)`: near :math:`\mu` clipped to :math:`[0, 1]`, not equal to it
        (the end bins hold the tails).
        """
        loc, log_scale = self._loc_scale(logits)
        return L.expected_value(loc, log_scale).expand(loc.shape)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Exact draws: :math:`\mu + s \log\frac{u}{1-u}` rounded to the grid and clipped."""
        check_generator(generator, logits.device)
        loc, log_scale = self._loc_scale(logits)
        return L.draw(loc, log_scale.expand(loc.shape), generator)


class DiscretizedLogisticMixtureDistribution(Distribution):
    r"""PixelCNN++'s mixture per pixel: what :class:`DiscretizedLogisticMixture` gives.

    Batch shape: the logits' leading dimensions; event shape ``(C, H, W)``.

    Args:
        log_weights: :math:`\log \pi_k` (normalized), ``(..., K, H, W)``.
        loc: :math:`\mu_{kc}` in data units, ``(..., K, C, H, W)``.
        log_scale: :math:`\log s_{kc}`, ``(..., K, C, H, W)``.
        coeffs: :math:`\alpha_{k,cj}` for :math:`j < c`, ``(..., K, C(C-1)/2, H, W)``.
    """

    has_rsample = False

    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        return {}

    def __init__(self, log_weights: Tensor, loc: Tensor, log_scale: Tensor, coeffs: Tensor):
        self.params = L.Mixture(log_weights, loc, log_scale, coeffs)
        c, h, w = loc.shape[-3:]
        super().__init__(loc.shape[:-4], torch.Size((c, h, w)), validate_args=False)

    @property
    def mean(self) -> Tensor:
        """The mean, as :meth:`DiscretizedLogisticMixture.mean` computes it."""
        return L.mixture_mean(self.params)

    def log_prob(self, value: Tensor) -> Tensor:
        return L.mixture_log_prob(self.params, value).sum((-2, -1))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> Tensor:
        shape = torch.Size(sample_shape)
        p = self.params
        if shape:
            lead = (*shape, *self.batch_shape)
            p = L.Mixture(*(t.expand(*lead, *t.shape[len(self.batch_shape) :]) for t in p))
        with torch.no_grad():
            return L.mixture_sample(p, None)


class DiscretizedLogisticMixture(_EightBit):
    r"""PixelCNN++'s discretized mixture of logistics (Salimans et al., 2017) for images.

    Each pixel :math:`x = (x_1, \dots, x_C)` of an image ``(C, H, W)`` has :math:`K`
    components; within component :math:`k`, channel :math:`c` is a discretized logistic
    whose location depends linearly on the channels before it:

    .. math::
        P(x) = \sum_{k=1}^K \pi_k \prod_{c=1}^C
        P\!\left(x_c;\ \mu_{kc} + \sum_{j<c} \alpha_{k,cj} \left(x_j - \tfrac12\right),\
        s_{kc}\right), \qquad \alpha = \tanh(\cdot)

    which for RGB is the paper's :math:`\mu_G + \alpha\, x_R` and
    :math:`\mu_B + \beta\, x_R + \gamma\, x_G` (on :math:`x' = 2x - 1`, the paper's
    :math:`[-1, 1]`, it is exactly the paper's model); for grayscale a plain mixture. The
    decoder gives :math:`K (1 + 2C + C(C-1)/2)` channels per pixel (30 for
    :math:`K = 10` on grayscale, 100 on RGB): the :math:`K` mixture logits, then
    :math:`K C` locations :math:`\ell` (:math:`\mu = \frac12 + \ell`), :math:`K C`
    log-scales, :math:`K C(C-1)/2` coupling outputs, each block ordered component-major.

    Args:
        n_mix: :math:`K`, the number of components (10 in the paper).

    Example:
        >>> like = DiscretizedLogisticMixture(n_mix=5)
        >>> like.params_shape((3, 32, 32))
        (50, 32, 32)
        >>> x = torch.full((2, 3, 32, 32), 128 / 255)
        >>> like.log_prob(torch.zeros(2, 50, 32, 32), x).shape
        torch.Size([2])
    """

    def __init__(self, n_mix: int = 10) -> None:
        super().__init__()
        self.n_mix = check_positive_int(n_mix, "n_mix")

    def config(self) -> dict[str, Any]:
        return {"n_mix": self.n_mix}

    def params_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """``(K (1 + 2C + C(C-1)/2), H, W)`` for images ``(C, H, W)``."""
        c, h, w = _image_shape(data_shape, "DiscretizedLogisticMixture")
        return (self.n_mix * (1 + 2 * c + c * (c - 1) // 2), h, w)

    def _split(self, logits: Tensor) -> L.Mixture:
        k = self.n_mix
        q = logits.shape[-3] if logits.ndim >= 3 else 0
        c = L.mixture_channels(q // k) if q % k == 0 else 0
        if not c:
            raise ValueError(
                f"DiscretizedLogisticMixture(n_mix={k}) needs logits (..., K (1 + 2C + "
                f"C(C-1)/2), H, W), e.g. {10 * k} channels for RGB, {3 * k} for grayscale; "
                f"got shape {tuple(logits.shape)}"
            )
        lead, (h, w) = logits.shape[:-3], logits.shape[-2:]
        parts = torch.split(logits, [k, k * c, k * c, k * c * (c - 1) // 2], dim=-3)
        return L.Mixture(
            torch.log_softmax(parts[0], dim=-3),
            L.location(parts[1].reshape(*lead, k, c, h, w)),
            L.log_scale(parts[2].reshape(*lead, k, c, h, w)),
            torch.tanh(parts[3].reshape(*lead, k, c * (c - 1) // 2, h, w)),
        )

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        """:math:`\\log P(x)` of each *pixel* (its channels are coupled), ``(..., H, W)``."""
        logits, x = L.full_precision(logits, x)
        return L.mixture_log_prob(self._split(logits), x)

    def _log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_elementwise(logits, x).sum((-2, -1))

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        raise NotImplementedError(
            "the mixture couples a pixel's channels: use distribution(logits), whose event "
            "is a whole image (C, H, W)"
        )

    def distribution(
        self, logits: Tensor, event_ndim: int | None = None
    ) -> Independent[Distribution]:
        """:math:`p_\\theta(x \\mid z)`; ``event_ndim`` (default all but the first) >= 3."""
        ndim = logits.ndim - 1 if event_ndim is None else event_ndim
        if ndim < 3:
            raise ValueError(f"event_ndim must be >= 3 (one image is (C, H, W)), got {ndim}")
        return Independent(DiscretizedLogisticMixtureDistribution(*self._split(logits)), ndim - 3)

    def mean(self, logits: Tensor) -> Tensor:
        r""":math:`\mathbb{E}[x \mid z]`, ``(..., C, H, W)``.

        Exact (to float precision) for grayscale, for the first channel, and wherever the
        coupling :math:`\alpha` is zero: :math:`\sum_k \pi_k m(\mu_{kc}, s_{kc})`, with
        :math:`m` the exact mean of one discretized logistic. For a coupled channel the mean
        within a component depends on the whole *distribution* of the channels before it (a
        sum over :math:`256^{c}` values per pixel, out of reach), so their component means
        are plugged in: :math:`\mathbb{E}_k[x_c] \approx m(\mu_{kc} + \sum_{j<c}
        \alpha_{k,cj} (\mathbb{E}_k[x_j] - \frac12), s_{kc})`. The location is linear in
        :math:`x_j`, so the error comes only from the clipping and rounding: measured against
        the exact sum on random RGB parameters with scales near :math:`e^{-4}`, a median of
        :math:`4 \cdot 10^{-4}` and at most :math:`0.02` (five grey levels), more for broad
        scales. It is a picture of the model, not an estimate to compute with; average
        :meth:`sample` draws (exact) for that.
        """
        return L.mixture_mean(self._split(logits))

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact draws: a component per pixel, then its channels in order, each on the grid."""
        check_generator(generator, logits.device)
        with torch.no_grad():
            return L.mixture_sample(self._split(logits), generator)


register_by_arguments(DiscretizedLogistic)
register_by_arguments(DiscretizedLogisticMixture)
