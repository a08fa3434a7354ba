"""Tests of the beta schedules: values at known steps and properties over their parameters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchvae.schedules import Constant, Cyclical, Linear

values = st.floats(0.0, 10.0, allow_nan=False)
steps = st.integers(0, 100_000)


def test_known_values() -> None:
    assert Constant(0.25)(0) == Constant(0.25)(10**9) == 0.25
    assert [Linear(steps=4)(t) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert Linear(steps=2, start=1.0, end=0.0)(1) == 0.5
    c = Cyclical(period=8, ratio=0.5)
    assert [c(t) for t in range(10)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.0, 0.25]


@settings(deadline=None)
@given(n=st.integers(1, 1000), start=values, end=values, t=steps)
def test_linear_is_monotone_bounded_and_ends_at_end(
    n: int, start: float, end: float, t: int
) -> None:
    s = Linear(steps=n, start=start, end=end)
    lo, hi = min(start, end), max(start, end)
    assert lo - 1e-12 <= s(t) <= hi + 1e-12
    assert s(0) == start
    assert math.isclose(s(n + t), end, abs_tol=1e-12)
    a, b = s(t), s(t + 1)
    assert (b - a) * (end - start) >= -1e-12


@settings(deadline=None)
@given(
    period=st.integers(1, 500),
    ratio=st.floats(0.01, 1.0),
    start=values,
    end=values,
    t=steps,
)
def test_cyclical_is_periodic_and_follows_fu_et_al(
    period: int, ratio: float, start: float, end: float, t: int
) -> None:
    s = Cyclical(period=period, ratio=ratio, start=start, end=end)
    assert math.isclose(s(t), s(t + period), abs_tol=1e-9)
    assert s(t * period) == start
    tau = (t % period) / period
    expected = end if tau >= ratio else start + (end - start) * tau / ratio
    assert math.isclose(s(t), expected, rel_tol=1e-9, abs_tol=1e-9)


def test_cyclical_stops_after_n_cycles() -> None:
    s = Cyclical(period=10, n_cycles=2)
    assert s(10) == 0.0
    assert s(19) == 1.0
    assert [s(t) for t in (20, 21, 1000)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda: Constant(-1.0), ValueError, "value"),
        (lambda: Constant(float("nan")), ValueError, "value"),
        (lambda: Constant("1"), TypeError, "value"),  # type: ignore[arg-type]
        (lambda: Linear(steps=0), ValueError, "steps"),
        (lambda: Linear(steps=1.5), TypeError, "steps"),  # type: ignore[arg-type]
        (lambda: Linear(steps=3, end=math.inf), ValueError, "end"),
        (lambda: Cyclical(period=4, ratio=0.0), ValueError, "ratio"),
        (lambda: Cyclical(period=4, ratio=1.5), ValueError, "ratio"),
        (lambda: Cyclical(period=-4), ValueError, "period"),
        (lambda: Cyclical(period=4, n_cycles=0), ValueError, "n_cycles"),
    ],
)
def test_bad_parameters_are_named(make: object, error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        make()  # type: ignore[operator]


def test_bad_step() -> None:
    with pytest.raises(ValueError, match="step"):
        Linear(steps=3)(-1)
    with pytest.raises(TypeError, match="step"):
        Cyclical(period=3)(1.0)  # type: ignore[arg-type]
