r"""Schedules for the KL weight :math:`\beta`: constant, linear warm-up and cyclical.

A schedule is any callable ``step -> value`` (``step`` counts optimizer steps from 0); the
:class:`~torchvae.callbacks.BetaSchedule` callback applies one to ``loss.beta`` before
each training step. The three classes here are small frozen dataclasses, so that a
schedule prints, compares and pickles as plain data.

KL warm-up (Bowman et al., 2016; Sønderby et al., 2016) starts with a small
:math:`\beta` so that the decoder learns to use :math:`z` before the KL term pushes the
posterior onto the prior; the cyclical schedule of Fu et al. (2019) repeats the warm-up,
which reduces posterior collapse further.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._validation import check_positive_int

__all__ = ["Constant", "Cyclical", "Linear", "Schedule"]


def _check_value(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite float >= 0, got {value}")
    return float(value)


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {type(step).__name__} {step!r}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


class Schedule:
    """Base class of the schedules: ``schedule(step)`` returns the value at that step."""

    def __call__(self, step: int) -> float:
        """The value at optimizer step ``step`` (>= 0)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    r"""The same value at every step: :math:`\beta_t = v`.

    Args:
        value: :math:`v`, finite and >= 0.

    Example:
        >>> Constant(0.5)(1000)
        0.5
    """

    value: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _check_value(self.value, "value"))

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.value


@dataclass(frozen=True)
class Linear(Schedule):
    r"""Linear warm-up from ``start`` to ``end`` over ``steps`` steps, then constant.

    .. math::
        \beta_t = s + (e - s)\,\min\!\left(1, \frac{t}{T}\right)

    Args:
        steps: :math:`T`, the length of the ramp in optimizer steps.
        start: :math:`s`, the value at step 0.
        end: :math:`e`, the value from step :math:`T` on.

    Example:
        >>> schedule = Linear(steps=100)
        >>> schedule(0), schedule(50), schedule(100), schedule(10_000)
        (0.0, 0.5, 1.0, 1.0)
    """

    steps: int
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        object.__setattr__(self, "start", _check_value(self.start, "start"))
        object.__setattr__(self, "end", _check_value(self.end, "end"))

    def __call__(self, step: int) -> float:
        fraction = min(1.0, _check_step(step) / self.steps)
        return self.start + (self.end - self.start) * fraction


@dataclass(frozen=True)
class Cyclical(Schedule):
    r"""The cyclical annealing schedule of Fu et al. (2019).

    Each cycle of :math:`P` steps ramps linearly from ``start`` to ``end`` over its first
    fraction :math:`R` and stays at ``end`` for the rest:

    .. math::
        \tau_t = \frac{t \bmod P}{P},\qquad
        \beta_t = s + (e - s)\,\min\!\left(1, \frac{\tau_t}{R}\right)

    (the paper's :math:`f(\tau) = \tau / R` for :math:`\tau \le R`, else 1, with
    :math:`P = T/M` for :math:`T` steps in :math:`M` cycles). After ``n_cycles`` cycles,
    if given, the value stays at ``end``.

    Args:
        period: :math:`P`, steps per cycle.
        ratio: :math:`R \in (0, 1]`, the fraction of a cycle spent increasing.
        start: :math:`s`, the value at the start of each cycle.
        end: :math:`e`, the value reached.
        n_cycles: number of cycles, then constant ``end``; ``None`` cycles for ever.

    Example:
        >>> schedule = Cyclical(period=100, ratio=0.5)
        >>> [schedule(t) for t in (0, 25, 50, 99, 100, 125)]
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    """

    period: int
    ratio: float = 0.5
    start: float = 0.0
    end: float = 1.0
    n_cycles: int | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.period, "period")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)):
            raise TypeError(f"ratio must be a float in (0, 1], got {type(self.ratio).__name__}")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        object.__setattr__(self, "start", _check_value(self.start, "start"))
        object.__setattr__(self, "end", _check_value(self.end, "end"))
        if self.n_cycles is not None:
            check_positive_int(self.n_cycles, "n_cycles")

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        if self.n_cycles is not None and step >= self.n_cycles * self.period:
            return self.end
        tau = (step % self.period) / self.period
        return self.start + (self.end - self.start) * min(1.0, tau / self.ratio)
