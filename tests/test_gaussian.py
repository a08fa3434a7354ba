"""Diagonal Gaussians: the closed-form KL, sampling and log-densities."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Independent, Normal, kl_divergence

from torchvae.gaussian import (
    GaussianParams,
    gaussian_kl,
    standard_normal,
    standard_normal_log_prob,
)

finite_means = st.floats(-1e3, 1e3, allow_nan=False, width=32)
finite_log_vars = st.floats(-30.0, 30.0, allow_nan=False, width=32)


def _params(values: list[tuple[float, float]], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    t = torch.tensor(values, dtype=dtype)
    return t[:, 0], t[:, 1]


@given(st.lists(st.tuples(finite_means, finite_log_vars), min_size=1, max_size=16))
def test_kl_is_never_negative(values: list[tuple[float, float]]) -> None:
    for dtype in (torch.float32, torch.float64):
        mean, log_var = _params(values, dtype)
        kl = gaussian_kl(mean, log_var)
        assert kl.shape == mean.shape
        assert bool((kl >= 0).all())
        assert bool(torch.isfinite(kl).all())


@given(st.lists(st.floats(-0.0009765625, 0.0009765625, width=32), min_size=1, max_size=8))
def test_kl_never_negative_near_the_prior_in_float32(log_vars: list[float]) -> None:
    # 1 + v - exp(v) rounds to a tiny negative number here without care.
    kl = gaussian_kl(torch.zeros(len(log_vars)), torch.tensor(log_vars))
    assert bool((kl >= 0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 4, 6)])
def test_kl_is_exactly_zero_at_the_prior(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    kl = gaussian_kl(torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype))
    assert torch.equal(kl, torch.zeros(shape, dtype=dtype))
    assert GaussianParams(torch.zeros(shape), torch.zeros(shape)).kl().sum().item() == 0.0


@given(
    st.lists(
        st.tuples(st.floats(-50, 50, width=32), st.floats(-15, 15, width=32)),
        min_size=1,
        max_size=16,
    )
)
def test_kl_matches_torch_distributions(values: list[tuple[float, float]]) -> None:
    mean, log_var = _params(values, torch.float64)
    q = Normal(mean, torch.exp(0.5 * log_var))
    p = Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(
        gaussian_kl(mean, log_var), kl_divergence(q, p), rtol=1e-10, atol=1e-12
    )


def test_kl_is_the_textbook_formula_summed() -> None:
    mean, log_var = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    textbook = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp())
    torch.testing.assert_close(gaussian_kl(mean, log_var).sum(), textbook)


def test_kl_matches_monte_carlo() -> None:
    gen = torch.Generator().manual_seed(1)
    params = GaussianParams(
        torch.tensor([0.7, -1.2], dtype=torch.float64),
        torch.tensor([-0.5, 0.8], dtype=torch.float64),
    )
    z = params.rsample(200_000, generator=gen)
    mc = (params.log_prob(z) - standard_normal_log_prob(z)).mean()
    assert abs(mc.item() - params.kl().sum().item()) < 0.01


@given(
    st.integers(1, 5),
    st.integers(1, 6),
    st.one_of(st.none(), st.integers(1, 4)),
)
def test_rsample_shapes_and_gradients(batch: int, dim: int, k: int | None) -> None:
    mean = torch.randn(batch, dim, requires_grad=True)
    log_var = torch.randn(batch, dim, requires_grad=True)
    z = GaussianParams(mean, log_var).rsample(k)
    assert z.shape == ((batch, dim) if k is None else (k, batch, dim))
    z.sum().backward()
    assert mean.grad is not None and log_var.grad is not None
    assert bool((log_var.grad != 0).any())


def test_rsample_is_mean_plus_std_times_eps() -> None:
    params = GaussianParams(torch.randn(3, 4), torch.randn(3, 4))
    z = params.rsample(generator=torch.Generator().manual_seed(5))
    eps = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(z, params.mean + torch.exp(0.5 * params.log_var) * eps)


def test_log_prob_and_distribution_match_torch() -> None:
    params = GaussianParams(torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4).double())
    z = torch.randn(5, 3, 4, dtype=torch.float64)
    reference = Independent(Normal(params.mean, params.std), 1).log_prob(z)
    torch.testing.assert_close(params.log_prob(z), reference)
    torch.testing.assert_close(params.distribution().log_prob(z), reference)
    assert params.distribution().event_shape == (4,)


def test_standard_normal() -> None:
    prior = standard_normal(3, dtype=torch.float64)
    assert prior.event_shape == (3,) and prior.mean.dtype == torch.float64
    z = torch.randn(10, 3, dtype=torch.float64)
    torch.testing.assert_close(standard_normal_log_prob(z), prior.log_prob(z))
    assert standard_normal_log_prob(torch.zeros(1, 2)).item() == pytest.approx(
        -math.log(2 * math.pi)
    )


def test_unpacks_like_the_textbook() -> None:
    mean, log_var = GaussianParams(torch.ones(2), torch.zeros(2))
    assert torch.equal(mean, torch.ones(2)) and torch.equal(log_var, torch.zeros(2))
