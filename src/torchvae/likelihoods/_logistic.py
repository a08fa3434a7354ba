"""The arithmetic of the discretized logistic and its mixture (see :mod:`torchvae.likelihoods`).

Every function here works on values ``x = v / 255`` and on parameters in data units; the
likelihoods and distributions of :mod:`torchvae.likelihoods` check their inputs and call them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import in_unit_interval

__all__ = [
    "GRID_TOLERANCE",
    "LEVELS",
    "Mixture",
    "bin_index",
    "broadcast",
    "draw",
    "expected_value",
    "full_precision",
    "location",
    "log_mass",
    "log_scale",
    "mixture_channels",
    "mixture_log_prob",
    "mixture_mean",
    "mixture_sample",
    "on_grid",
]


def broadcast(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` expanded to their common shape (views)."""
    shape = torch.broadcast_shapes(a.shape, b.shape)  # type: ignore[no-untyped-call]
    return a.expand(shape), b.expand(shape)


LEVELS = 255  # the largest 8-bit value; x = v / 255
_HALF_BIN = 0.5 / LEVELS
_MIN_LOG_SCALE = -7.0 - math.log(2.0)  # PixelCNN++'s -7 on [-1, 1], in the units of [0, 1]
_MAX_LOG_SCALE = 7.0  # past e^7 data ranges the masses no longer change
_LOC_LIMIT = 10.0  # |location output| beyond this changes no mass
# 255 x this close to an integer is an 8-bit value (float32 v / 255 is within 1e-5).
GRID_TOLERANCE = 1e-3


def bin_index(x: Tensor) -> Tensor:
    """The 8-bit value :math:`v = \\operatorname{round}(255 x)`, in ``x``'s dtype."""
    return torch.round(x * LEVELS)


def on_grid(x: Tensor) -> Tensor:
    """Whether every value is an 8-bit value v / 255 in [0, 1], as a 0-d bool tensor."""
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    scaled = x * LEVELS
    off = (scaled - torch.round(scaled)).abs().amax()
    return in_unit_interval(x) & (off <= GRID_TOLERANCE)  # NaN fails both


def full_precision(logits: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """float16/bfloat16 (autocast) logits and targets in float32: bins 1/255 wide need it.

    ``round(255 x)`` recovers the 8-bit value even from a bfloat16 ``x`` (its spacing, at
    most 1/256 below 1, keeps every v / 255 within half a level), but not after 255 x is
    rounded to bfloat16 again.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        return logits.float(), x.float()
    return logits, x


def location(raw: Tensor) -> Tensor:
    r""":math:`\mu = \frac12 + \ell` from a location output, clamped to finite arithmetic."""
    return raw.clamp(-_LOC_LIMIT, _LOC_LIMIT) + 0.5


def log_scale(raw: Tensor) -> Tensor:
    r"""A log-scale output clamped to :math:`[-7 - \ln 2, 7]`."""
    return raw.clamp(_MIN_LOG_SCALE, _MAX_LOG_SCALE)


def log_mass(v: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    r""":math:`\log P(v / 255)` for 8-bit values ``v`` (as floats), broadcast together."""
    inv = torch.exp(-log_scale)
    centre = v / LEVELS - loc
    upper = (centre + _HALF_BIN) * inv
    lower = (centre - _HALF_BIN) * inv
    top, bottom = v >= LEVELS, v <= 0
    zero = torch.zeros((), dtype=upper.dtype, device=upper.device)
    # Each term is finite everywhere, so the masked-out branches cannot leak NaN gradients.
    log_cdf = torch.where(top, zero, F.logsigmoid(upper))
    log_sf = torch.where(bottom, zero, F.logsigmoid(-lower))
    log_width = torch.where(top | bottom, zero, torch.log(-torch.expm1(-inv / LEVELS)))
    return log_cdf + log_sf + log_width


_TAIL = 20.0  # sigma(-20) = 2e-9: edges farther than 20 s from mu count as passed or not
_WINDOW_CHUNK = 1 << 16  # values summed at once over their window: bounds the memory


def expected_value(loc: Tensor, log_scale: Tensor) -> Tensor:
    r"""The exact mean of the discretized logistic, to float precision.

    :math:`\mathbb{E}[x] = \sum_v \frac{v}{255} P(v) = h \sum_{i=1}^{255} f(b_i)`, with
    :math:`f(t) = \sigma((\mu - t)/s) = P(y > t)`, :math:`h = 1/255` and the inner bin
    edges :math:`b_i = (i - \frac12) h`: a midpoint rule for :math:`\int_0^1 f`. For
    :math:`s \ge h` it is summed by Euler-Maclaurin,

    .. math::
        h \sum_i f(b_i) = \int_0^1 f - \frac{h^2}{24} \Delta f' + \frac{7 h^4}{5760}
        \Delta f^{(3)} - \frac{31 h^6}{967680} \Delta f^{(5)} + \dots,
        \qquad \int_0^1 f = s \left[\operatorname{softplus}\tfrac{\mu}{s}
        - \operatorname{softplus}\tfrac{\mu - 1}{s}\right]

    (:math:`\Delta g = g(1) - g(0)`), whose remainder is below :math:`10^{-8}` there (the
    periodic part of the error is of order :math:`e^{-2\pi^2 s/h}`). For :math:`s < h` only
    the edges within :math:`20 s` of :math:`\mu` are summed, the others counting as
    :math:`f = 1` or 0. Both agree with the plain 255-term sum to :math:`10^{-8}` in float64
    and to rounding in float32, at a fraction of its cost.
    """
    loc, log_scale = broadcast(loc, log_scale)
    h = 1.0 / LEVELS
    inv = torch.exp(-log_scale)
    scale = torch.exp(log_scale)
    u0, u1 = loc * inv, (loc - 1.0) * inv
    # The integral without cancellation: log1p(sigma(u1) expm1(1/s)), where expm1 can't overflow.
    narrow = inv > 20.0
    spread = torch.log1p(torch.sigmoid(u1) * torch.expm1(inv.clamp(max=20.0)))
    integral = scale * torch.where(narrow, F.softplus(u0) - F.softplus(u1), spread)
    # sigma' = q, sigma''' = q (1 - 6q), sigma^(5) = q (1 - 30q + 120q^2), q = sigma(u) sigma(-u)
    q0 = torch.sigmoid(u0) * torch.sigmoid(-u0)
    q1 = torch.sigmoid(u1) * torch.sigmoid(-u1)
    d1 = q1 - q0
    d3 = q1 * (1 - 6 * q1) - q0 * (1 - 6 * q0)
    d5 = q1 * (1 - 30 * q1 + 120 * q1 * q1) - q0 * (1 - 30 * q0 + 120 * q0 * q0)
    r = h * inv
    out = integral + h * (r / 24 * d1 - 7 * r**3 / 5760 * d3 + 31 * r**5 / 967680 * d5)
    sharp = scale < h
    if not bool(sharp.any()):
        return out
    mus, ss = loc[sharp], scale[sharp]
    width = math.ceil(2 * _TAIL * float(ss.max()) / h) + 2
    steps = torch.arange(1, width + 1, dtype=loc.dtype, device=loc.device)
    pieces = []
    for mu, s in zip(torch.split(mus, _WINDOW_CHUNK), torch.split(ss, _WINDOW_CHUNK), strict=True):
        passed = torch.clamp(torch.ceil((mu - _TAIL * s) / h + 0.5) - 1, 0, LEVELS)
        i = passed.unsqueeze(-1) + steps
        terms = torch.sigmoid((mu.unsqueeze(-1) - (i - 0.5) * h) / s.unsqueeze(-1))
        pieces.append(h * (passed + (terms * (i <= LEVELS)).sum(-1)))
    window = torch.zeros_like(out)
    window[sharp] = torch.cat(pieces)
    return torch.where(sharp, window, out)


def draw(loc: Tensor, log_scale: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Exact draws: :math:`y = \mu + s \log\frac{u}{1 - u}`, rounded to the grid and clipped."""
    u = torch.rand(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
    y = loc + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))  # u = 0 gives -inf: 0
    return torch.round(y * LEVELS).clamp(0, LEVELS) / LEVELS


class Mixture(NamedTuple):
    """The mixture's parameters per pixel: ``(..., K, H, W)`` and ``(..., K, C|pairs, H, W)``."""

    log_weights: Tensor  # log-softmax over the K components
    loc: Tensor  # mu, data units, before the channel coupling
    log_scale: Tensor
    coeffs: Tensor  # tanh of the coupling outputs, pair (c, j < c) at c (c - 1) / 2 + j


def mixture_channels(per_component: int) -> int:
    """``C`` from ``1 + 2C + C(C - 1)/2`` parameters per component."""
    c = (math.isqrt(1 + 8 * per_component) - 3) // 2
    return c if c >= 1 and 1 + 2 * c + c * (c - 1) // 2 == per_component else 0


def _coupled(loc: Tensor, coeffs: Tensor, previous: Sequence[Tensor], c: int) -> Tensor:
    r""":math:`\mu_c + \sum_{j<c} \alpha_{cj} (x_j - \frac12)`; channels and pairs on dim -3."""
    out = loc[..., c, :, :]
    for j, x_j in enumerate(previous):
        out = out + coeffs[..., c * (c - 1) // 2 + j, :, :] * (x_j - 0.5)
    return out


def mixture_log_prob(p: Mixture, x: Tensor) -> Tensor:
    r""":math:`\log P(x)` per pixel, ``(..., H, W)``, for x ``(..., C, H, W)`` broadcast."""
    v = bin_index(x).unsqueeze(-4)  # (..., 1, C, H, W): shared by the K components
    xs = (v / LEVELS).unbind(-3)
    total = p.log_weights
    for c in range(p.loc.shape[-3]):
        loc = _coupled(p.loc, p.coeffs, xs[:c], c)
        total = total + log_mass(v[..., c, :, :], loc, p.log_scale[..., c, :, :])
    return torch.logsumexp(total, dim=-3)


def mixture_mean(p: Mixture) -> Tensor:
    means: list[Tensor] = []
    for c in range(p.loc.shape[-3]):
        loc = _coupled(p.loc, p.coeffs, means, c)
        means.append(expected_value(loc, p.log_scale[..., c, :, :]))
    weights = p.log_weights.exp()
    return torch.stack([(weights * m).sum(-3) for m in means], dim=-3)


def mixture_sample(p: Mixture, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(p.log_weights.shape, generator=generator, device=p.loc.device, dtype=p.loc.dtype)
    gumbel = -torch.log(-torch.log(u))  # u = 0 gives -inf: never chosen
    k = (p.log_weights + gumbel).argmax(dim=-3, keepdim=True).unsqueeze(-3)  # (..., 1, 1, H, W)

    def pick(t: Tensor) -> Tensor:
        return t.gather(-4, k.expand(*t.shape[:-4], 1, *t.shape[-3:])).squeeze(-4)

    loc, log_scale, coeffs = pick(p.loc), pick(p.log_scale), pick(p.coeffs)
    xs: list[Tensor] = []
    for c in range(loc.shape[-3]):
        xs.append(draw(_coupled(loc, coeffs, xs, c), log_scale[..., c, :, :], generator))
    return torch.stack(xs, dim=-3)
