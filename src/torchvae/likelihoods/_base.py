"""The base class of likelihoods, and the checks shared by the objectives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent

from .._validation import check_finite, check_floating, check_generator

__all__ = ["Likelihood", "in_unit_interval", "sum_event"]


def sum_event(values: Tensor, event_ndim: int) -> Tensor:
    return values.sum(dim=tuple(range(-event_ndim, 0))) if event_ndim else values


def in_unit_interval(x: Tensor) -> Tensor:
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
        return sum_event(self.log_prob_elementwise(logits, x), x.ndim - 1)

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
