r"""Reconstruction likelihoods :math:`p_\theta(x \mid z)` computed from decoder logits.

Each likelihood turns the decoder's unconstrained output (``logits``) and the data ``x``
into :math:`\log p_\theta(x \mid z)`, summed over every feature of an example, in nats.
They work from logits, never from ``log(sigmoid(...))``, so they stay finite where the
sigmoid saturates.

``log_prob(logits, x)`` broadcasts: ``x`` has shape ``(batch, *event)`` and ``logits``
``(*sample, batch, *event)`` (e.g. ``k`` importance samples in front); the result has
shape ``(*sample, batch)``.

A likelihood is a module of the model (``VAE(..., likelihood=Gaussian(...))``): calling it
on the decoder's output gives :math:`p_\theta(x \mid z)` as a ``torch.distributions``
object, :meth:`Likelihood.mean` its mean (what ``model.sample()`` and
``model.reconstruct()`` return) and :meth:`Likelihood.sample` a draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution, Independent, Normal

from ._validation import check_finite, check_floating, check_generator, check_in_unit_interval

__all__ = [
    "Bernoulli",
    "ContinuousBernoulli",
    "Gaussian",
    "Likelihood",
    "check_likelihood",
    "describe",
    "same_likelihood",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(values: Tensor, event_ndim: int) -> Tensor:
    return values.sum(dim=tuple(range(-event_ndim, 0))) if event_ndim else values


class _BernoulliNLL(torch.autograd.Function):
    r"""Elementwise :math:`\operatorname{softplus}(\ell) - x\ell`, summed over the last ``n`` dims.

    On the CPU this is 2-3x faster than ``binary_cross_entropy_with_logits``: ATen's CPU
    ``log1p`` (inside softplus and BCE) is scalar code, while ``exp`` and ``log`` are
    vectorized. It uses :math:`\operatorname{softplus}(\ell) = \max(\ell, 0) +
    \log(1 + e^{-|\ell|})`, where rounding :math:`1 + e^{-|\ell|}` to the nearest float
    costs at most :math:`2^{-24} \approx 6 \cdot 10^{-8}` nats per feature in float32
    (about :math:`10^{-7}` with the rounding of the logarithm): the size of rounding the
    result itself. The gradient is exact:
    :math:`\sigma(\ell) - x`.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, x: Tensor, event_ndim: int) -> Tensor:
        ctx.save_for_backward(logits, x)
        ctx.event_ndim = event_ndim
        # In-place chain: one temporary the size of the logits, no per-op allocation.
        value = logits.abs().neg_().exp_().add_(1.0).log_()
        value.add_(logits.clamp_min(0.0)).addcmul_(x, logits, value=-1.0)
        return _sum_event(value, event_ndim)

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
    return _sum_event(nll, event_ndim)


def _in_unit_interval(x: Tensor) -> Tensor:
    """Whether every value of ``x`` is in [0, 1] (NaN is not), as a 0-d bool tensor."""
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x)  # one pass; NaN propagates and fails both comparisons
    return (low >= 0) & (high <= 1)


class Likelihood(nn.Module):
    r"""Base class: a family :math:`p_\theta(x \mid z)` parameterized by the decoder's output.

    The decoder's output (``logits``: unconstrained parameters, one per feature unless
    :meth:`params_shape` says otherwise) is all a likelihood needs. Subclasses implement
    :meth:`log_prob_elementwise` and :meth:`distribution_elementwise`, and may override
    :meth:`validate_target`, :meth:`mean`, :meth:`sample` and :meth:`config`.

    Attributes:
        data_range: the interval the data lie in, ``(low, high)``, or ``None`` for
            unbounded data; used to clamp pictures and to bound a VampPrior's pseudo-inputs.
        discrete: whether :meth:`log_prob` is the log of a probability mass over discrete
            values (Bernoulli, the discretized logistics) rather than of a density; it
            decides how :func:`~torchvae.bits_per_dim` treats dequantized data.
    """

    data_range: tuple[float, float] | None = (0.0, 1.0)
    discrete: bool = False

    def params_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """The decoder output shape this likelihood needs for one example of ``data_shape``."""
        return tuple(data_shape)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this likelihood (JSON values)."""
        return {}

    def validate_target(self, x: Tensor, name: str = "x") -> Tensor:
        """Check ``x`` can be scored by this likelihood; returns it unchanged."""
        return check_finite(check_floating(x, name), name)

    def target_ok(self, x: Tensor) -> Tensor:
        """Whether :meth:`validate_target` would accept ``x``'s values, as a 0-d bool tensor.

        It reads no value back to the host, so a training step can fold it into the one
        check it makes anyway, instead of paying a device synchronisation for it.
        """
        return torch.isfinite(x).all()

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        """Log-probability of each feature, broadcast to ``logits``' shape."""
        raise NotImplementedError

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        """The per-feature distribution (batch shape = ``logits.shape``)."""
        raise NotImplementedError

    def mean(self, logits: Tensor) -> Tensor:
        r"""The mean :math:`\mathbb{E}[x \mid z]` of :math:`p_\theta(x \mid z)`."""
        return torch.sigmoid(logits)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""A draw :math:`x \sim p_\theta(x \mid z)`, ``logits``' shape.

        Args:
            logits: decoder output.
            generator: optional random generator on ``logits``' device.
        """
        check_generator(generator, logits.device)
        if generator is not None:
            raise NotImplementedError(
                f"{type(self).__name__}.sample does not take a generator; override sample"
            )
        out: Tensor = self.distribution_elementwise(logits).sample()
        return out

    def forward(self, logits: Tensor) -> Independent[Distribution]:
        r""":math:`p_\theta(x \mid z)` for decoder output ``logits`` ``(batch, *event)``."""
        return self.distribution(logits)

    def log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log p_\theta(x \mid z)` summed over the features of each example.

        Args:
            logits: decoder output, ``(*sample, batch, *params_shape(event))`` (``event``
                is ``x.shape[1:]``; the same for the built-in one-per-feature likelihoods),
                floating point, finite.
            x: data, ``(batch, *event)``, valid for this likelihood (see
                :meth:`validate_target`); cast to ``logits``' dtype.

        Returns:
            Shape ``(*sample, batch)``, in nats.

        Raises:
            TypeError: ``logits`` or ``x`` is not a floating-point tensor.
            ValueError: their shapes or devices do not match, ``logits`` holds NaN/inf,
                or ``x`` is not a valid target.
        """
        logits = check_finite(check_floating(logits, "logits"), "logits")
        x = self.validate_target(x)
        want = (*x.shape[:1], *self.params_shape(tuple(x.shape[1:]))) if x.ndim else ()
        if x.ndim < 1 or tuple(logits.shape[logits.ndim - len(want) :]) != want:
            raise ValueError(
                f"logits must have shape (*sample, batch, *params_shape) = (..., "
                f"{', '.join(map(str, want))}) for x of shape {tuple(x.shape)}, got logits "
                f"{tuple(logits.shape)}"
            )
        if x.device != logits.device:
            raise ValueError(f"x is on {x.device} but logits are on {logits.device}")
        return self._log_prob(logits, x.to(logits.dtype))

    def _log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        """:meth:`log_prob` without the checks, for callers that made them."""
        return _sum_event(self.log_prob_elementwise(logits, x), x.ndim - 1)

    def _mean_nll(self, logits: Tensor, x: Tensor) -> Tensor:
        r""":math:`-\log p(x \mid z)` averaged over the examples (and samples), unchecked."""
        return -self._log_prob(logits, x).mean()

    def distribution(
        self, logits: Tensor, event_ndim: int | None = None
    ) -> Independent[Distribution]:
        """:math:`p_\\theta(x \\mid z)` as a ``torch.distributions`` object.

        Args:
            logits: decoder output, ``(batch, *event)``.
            event_ndim: how many trailing dimensions form one example; default all but
                the first.
        """
        ndim = logits.ndim - 1 if event_ndim is None else event_ndim
        return Independent(self.distribution_elementwise(logits), ndim)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


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
        return _in_unit_interval(x)

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
        return _in_unit_interval(x)

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


class Gaussian(Likelihood):
    r"""Gaussian likelihood with a fixed or learned scale.

    .. math::
        \log p(x \mid z) = -\sum_i \left[\frac{(x_i - \mu_i)^2}{2 s^2} + \log s
        + \tfrac12 \log 2\pi\right]

    The mean is :math:`\mu = \sigma(\ell)` (``link="sigmoid"``, for data in [0, 1], so that
    it equals the decoder's output ``x_hat``) or :math:`\mu = \ell` (``link="identity"``,
    for unbounded data).

    Args:
        scale: the standard deviation :math:`s` (the initial one when learned).
        learn_scale: learn one shared :math:`\log s` as a parameter; the optimizer must
            then see this module's parameters (the Trainer includes them).
        link: ``"sigmoid"`` or ``"identity"``.

    Example:
        >>> Gaussian(scale=1.0, link="identity").log_prob(torch.zeros(1, 2), torch.zeros(1, 2))
        tensor([-1.8379])
    """

    def __init__(
        self,
        scale: float = 1.0,
        learn_scale: bool = False,
        link: Literal["sigmoid", "identity"] = "sigmoid",
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"scale must be a positive float, got {type(scale).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite float, got {scale}")
        if link not in ("sigmoid", "identity"):
            raise ValueError(f"link must be 'sigmoid' or 'identity', got {link!r}")
        if not isinstance(learn_scale, bool):
            raise TypeError(f"learn_scale must be a bool, got {type(learn_scale).__name__}")
        self.link = link
        self.learn_scale = learn_scale
        self.initial_scale = float(scale)
        self.data_range = (0.0, 1.0) if link == "sigmoid" else None
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def config(self) -> dict[str, Any]:
        return {"scale": self.initial_scale, "learn_scale": self.learn_scale, "link": self.link}

    def mean(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.link == "sigmoid" else logits

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Draws :math:`x = \mu + s\,\varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`."""
        check_generator(generator, logits.device)
        eps = torch.randn(
            logits.shape, generator=generator, device=logits.device, dtype=logits.dtype
        )
        return self.mean(logits) + torch.exp(self.log_scale.to(logits.dtype)) * eps

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        log_scale = self.log_scale.to(logits.dtype)
        z = (x - self.mean(logits)) * torch.exp(-log_scale)
        return -0.5 * z.square() - log_scale - 0.5 * _LOG_2PI

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        scale = torch.exp(self.log_scale.to(logits.dtype)).expand_as(logits)
        return Normal(self.mean(logits), scale, validate_args=False)


def check_likelihood(likelihood: object) -> Likelihood:
    """``likelihood``, or :class:`Bernoulli` for ``None``; a ``TypeError`` for anything else."""
    if likelihood is None:
        return Bernoulli()
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a torchvae Likelihood (Bernoulli(), Gaussian(), ...), "
            f"got {type(likelihood).__name__}"
        )
    return likelihood


def describe(likelihood: Likelihood) -> str:
    """``Name(arg=value, ...)``, as the constructor is called."""
    return f"{type(likelihood).__name__}({likelihood.extra_repr()})"


def same_likelihood(a: Likelihood, b: Likelihood) -> bool:
    """Whether ``a`` and ``b`` are the same family with the same constructor arguments."""
    return a is b or (type(a) is type(b) and a.config() == b.config())
