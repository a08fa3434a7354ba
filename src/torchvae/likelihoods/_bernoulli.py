"""Bernoulli likelihoods on logits: the Bernoulli and the continuous Bernoulli."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution

from .._validation import check_floating, check_generator, check_in_unit_interval
from ..io.registry import register_by_arguments
from ._base import Likelihood, in_unit_interval, sum_event

__all__ = ["Bernoulli", "ContinuousBernoulli", "continuous_bernoulli_log_norm"]


class _BernoulliNLL(torch.autograd.Function):
    r"""Elementwise :math:`\operatorname{softplus}(\ell) - x\ell`, summed over the last ``n`` dims.

    On the CPU this is several times faster than ``binary_cross_entropy_with_logits``:
    ATen's CPU ``log1p`` (inside BCE with logits, ``softplus`` and ``logaddexp``) is
    scalar, while ``exp`` and ``log`` of arguments in :math:`[1, 2]` are vectorized. So
    :math:`\operatorname{softplus}(\ell) = \max(\ell, 0) + \log(1 + e^{-|\ell|})`
    is written with ``exp`` and ``log``, in place. Rounding :math:`1 + e^{-|\ell|}` drops
    terms below half an ulp of 1 (:math:`6 \cdot 10^{-8}` in float32, where
    :math:`|\ell| > 16.6`), less than the rounding of any per-example sum of such terms;
    :math:`|\ell|` is clamped at 80 first, which changes the value by under
    :math:`10^{-34}` and keeps ``exp`` off its slow path for results below float32's
    normal range. The gradient is exact: :math:`\sigma(\ell) - x`.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, x: Tensor, event_ndim: int) -> Tensor:
        ctx.save_for_backward(logits, x)
        ctx.event_ndim = event_ndim
        value = logits.abs().clamp_max_(80.0).neg_().exp_().add_(1.0).log_()
        value.add_(logits.clamp_min(0.0)).addcmul_(x, logits, value=-1.0)
        return sum_event(value, event_ndim)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        logits, x = ctx.saved_tensors
        g = grad.reshape(*grad.shape, *([1] * ctx.event_ndim))
        grad_logits = torch.sigmoid(logits).sub_(x).mul_(g) if ctx.needs_input_grad[0] else None
        grad_x = (-g * logits).sum_to_size(x.shape) if ctx.needs_input_grad[1] else None
        return grad_logits, grad_x, None


_FAST_BERNOULLI_MIN_NUMEL = 16384


def _bernoulli_nll(logits: Tensor, x: Tensor, event_ndim: int) -> Tensor:
    r""":math:`-\log p(x \mid z)` per example for logits ``(..., *event)`` and ``x`` broadcast."""
    on_cpu = logits.device.type == "cpu"
    if on_cpu and logits.dtype in (torch.float16, torch.bfloat16):  # autocast: score in fp32
        logits = logits.float()
    # GPUs: one fused kernel, log1p is fast there. Small CPU tensors: the Python-level
    # autograd Function costs more than it saves (they break even near 16k elements).
    if on_cpu and logits.numel() >= _FAST_BERNOULLI_MIN_NUMEL:
        out: Tensor = _BernoulliNLL.apply(logits, x.to(logits.dtype), event_ndim)
        return out
    target = x.expand_as(logits)
    if event_ndim == logits.ndim:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return sum_event(nll, event_ndim)


class Bernoulli(Likelihood):
    r"""Bernoulli likelihood: binary cross-entropy on logits.

    .. math::
        \log p(x \mid z) = \sum_i x_i \ell_i - \operatorname{softplus}(\ell_i),
        \qquad \ell = \text{logits}

    Targets may be any values in [0, 1] (grey levels, as the textbook uses them); the
    value is then the negative binary cross-entropy, not a normalized density.

    Example:
        >>> Bernoulli().log_prob(torch.zeros(1, 3), torch.ones(1, 3))
        tensor([-2.0794])
    """

    discrete = True  # a probability mass on binary data

    def validate_target(self, x: Tensor, name: str = "x") -> Tensor:
        return check_in_unit_interval(
            check_floating(x, name), name, "a Bernoulli likelihood (scale images to [0, 1])"
        )

    def target_ok(self, x: Tensor) -> Tensor:
        return in_unit_interval(x)

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")

    def _log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        return -_bernoulli_nll(logits, x, x.ndim - 1)

    def _mean_nll(self, logits: Tensor, x: Tensor) -> Tensor:
        rows = logits.numel() // max(1, x[0].numel())
        return _bernoulli_nll(logits, x, logits.ndim).sum() / rows

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        return torch.distributions.Bernoulli(logits=logits, validate_args=False)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Binary draws :math:`x_i \sim \mathrm{Bernoulli}(\sigma(\ell_i))`, as floats."""
        check_generator(generator, logits.device)
        return torch.bernoulli(torch.sigmoid(logits), generator=generator)


def continuous_bernoulli_log_norm(logits: Tensor) -> Tensor:
    r"""Log normalizing constant of the continuous Bernoulli, from logits.

    With :math:`\lambda = \sigma(\ell)`,
    :math:`C(\lambda) = \frac{2\,\operatorname{artanh}(1-2\lambda)}{1-2\lambda}`,
    which in terms of the logit is :math:`C = \ell / \tanh(\ell/2)`, an even function with
    :math:`C(0) = 2`. For :math:`|\ell| < 10^{-2}` the series
    :math:`\log C = \log 2 + \ell^2/12 - 7\ell^4/1440` is used (its next term is below
    :math:`10^{-15}` there); elsewhere
    :math:`\log|\ell| - \log(1 - e^{-|\ell|}) + \log(1 + e^{-|\ell|})`, written with
    ``expm1`` and ``log1p`` so that it stays accurate near the switch and for large
    :math:`|\ell|`, where :math:`\log C \approx \log|\ell|`.

    Args:
        logits: :math:`\ell`, any shape.

    Returns:
        :math:`\log C(\ell)`, the same shape; finite for every finite :math:`\ell`,
        with finite gradients.

    Example:
        >>> continuous_bernoulli_log_norm(torch.tensor([0.0, 100.0]))
        tensor([0.6931, 4.6052])
    """
    a = logits.abs()
    small = a < 1e-2
    # Each branch sees only inputs where it is finite, so that torch.where's gradient
    # (0 * inf in the branch not taken) cannot turn into NaN.
    big = torch.where(small, torch.ones_like(a), a)
    large = torch.log(big) - torch.log(-torch.expm1(-big)) + torch.log1p(torch.exp(-big))
    sq = torch.where(small, logits, torch.zeros_like(logits)).square()
    series = math.log(2.0) + sq / 12.0 - 7.0 * sq.square() / 1440.0
    return torch.where(small, series, large)


class ContinuousBernoulli(Likelihood):
    r"""Continuous Bernoulli likelihood (Loaiza-Ganem & Cunningham, 2019).

    The Bernoulli cross-entropy plus the log normalizing constant that makes it a proper
    density on [0, 1]:

    .. math::
        \log p(x \mid z) = \sum_i x_i \ell_i - \operatorname{softplus}(\ell_i)
        + \log C(\ell_i), \qquad C(\ell) = \frac{\ell}{\tanh(\ell/2)}

    Example:
        >>> ContinuousBernoulli().log_prob(torch.zeros(1, 3), torch.full((1, 3), 0.5))
        tensor([0.])
    """

    def validate_target(self, x: Tensor, name: str = "x") -> Tensor:
        return check_in_unit_interval(
            check_floating(x, name), name, "a continuous Bernoulli likelihood"
        )

    def target_ok(self, x: Tensor) -> Tensor:
        return in_unit_interval(x)

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        return continuous_bernoulli_log_norm(logits) - bce

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        return torch.distributions.ContinuousBernoulli(logits=logits, validate_args=False)

    def mean(self, logits: Tensor) -> Tensor:
        r"""The mean of the continuous Bernoulli, from the logits.

        .. math::
            \frac{\lambda}{2\lambda - 1} + \frac{1}{2\operatorname{artanh}(1 - 2\lambda)}
            = \frac12 + \frac{1}{2\tanh(\ell/2)} - \frac1\ell,
            \qquad \lambda = \sigma(\ell)

        which is not :math:`\sigma(\ell)`: the density pulls mass towards 1/2. Near
        :math:`\ell = 0`, where the two last terms cancel, the series
        :math:`\frac12 + \frac{\ell}{12} - \frac{\ell^3}{720} + \frac{\ell^5}{30240}` is used
        (``torch.distributions.ContinuousBernoulli`` clamps :math:`\lambda` instead, so its
        mean is off for :math:`|\ell| \gtrsim 16`).
        """
        small = logits.abs() < 0.1
        safe = torch.where(small, torch.ones_like(logits), logits)
        direct = 0.5 + 0.5 / torch.tanh(0.5 * safe) - 1.0 / safe
        ell = torch.where(small, logits, torch.zeros_like(logits))
        sq = ell.square()
        series = 0.5 + ell * (1.0 / 12.0 - sq * (1.0 / 720.0 - sq / 30240.0))
        return torch.where(small, series, direct)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Draws by inverting the CDF, computed from the logits.

        With :math:`u \sim U(0, 1)` and :math:`\ell \le 0`,
        :math:`x = \log(1 + u\,(e^{\ell} - 1)) / \ell` (:math:`x = u` at :math:`\ell = 0`);
        positive logits use the symmetry :math:`x \mapsto 1 - x`,
        :math:`\ell \mapsto -\ell`, so that nothing overflows.
        """
        check_generator(generator, logits.device)
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        positive = logits > 0
        a = -logits.abs()
        v = torch.where(positive, 1.0 - u, u)
        zero = a == 0
        safe = torch.where(zero, -torch.ones_like(a), a)
        x = torch.where(zero, v, torch.log1p(v * torch.expm1(safe)) / safe)
        return torch.where(positive, 1.0 - x, x).clamp(0.0, 1.0)


register_by_arguments(Bernoulli)
register_by_arguments(ContinuousBernoulli)
