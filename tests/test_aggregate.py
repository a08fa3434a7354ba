"""The aggregate posterior's minibatch estimators against direct computations."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.distributions import Normal

from torchvae.objectives.aggregate import (
    aggregate_log_densities,
    log_importance_weights,
    pairwise_log_density,
)


def _params(b: int, d: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(b, d, generator=g, dtype=torch.float64)
    log_var = torch.randn(b, d, generator=g, dtype=torch.float64) * 0.5
    z = mean + (0.5 * log_var).exp() * torch.randn(b, d, generator=g, dtype=torch.float64)
    return z, mean, log_var


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4))
def test_pairwise_density_is_each_gaussian_at_each_sample(n: int, b: int, d: int) -> None:
    z, _, _ = _params(n, d, seed=1)
    _, mean, log_var = _params(b, d, seed=2)
    got = pairwise_log_density(z, mean, log_var)
    assert got.shape == (n, b, d)
    for i, j in itertools.product(range(n), range(b)):
        want = Normal(mean[j], (0.5 * log_var[j]).exp()).log_prob(z[i])
        torch.testing.assert_close(got[i, j], want)


def test_weights_of_each_estimator() -> None:
    n, b = 100, 5
    mws = log_importance_weights(b, n, "mws", dtype=torch.float64).exp()
    assert torch.allclose(mws, torch.full((b, b), 1 / (n * b), dtype=torch.float64))
    mss = log_importance_weights(b, n, "mss", dtype=torch.float64).exp()
    m = b - 1
    for i in range(b):
        assert math.isclose(mss[i, i], 1 / n)
        assert math.isclose(mss[i, (i + 1) % b], (n - m) / (n * m))
        others = [j for j in range(b) if j not in (i, (i + 1) % b)]
        assert torch.allclose(mss[i, others], torch.full((m - 1,), 1 / m, dtype=torch.float64))
    torch.testing.assert_close(mss.sum(1), torch.ones(b, dtype=torch.float64))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_estimates_against_the_formulas_written_out(estimator: str) -> None:
    n, (b, d) = 50, (4, 3)
    z, mean, log_var = _params(b, d)
    got = aggregate_log_densities(z, mean, log_var, n, estimator)  # type: ignore[arg-type]
    m = b - 1

    def weight(i: int, j: int) -> float:
        if estimator == "mws":
            return 1 / (n * b)
        if i == j:
            return 1 / n
        return (n - m) / (n * m) if j == (i + 1) % b else 1 / m

    def density(i: int, j: int, dims: list[int]) -> float:
        value = 1.0
        for k in dims:
            sd = math.exp(0.5 * log_var[j, k].item())
            u = (z[i, k].item() - mean[j, k].item()) / sd
            value *= math.exp(-0.5 * u * u) / (sd * math.sqrt(2 * math.pi))
        return value

    for i in range(b):
        assert math.isclose(got.log_qz_x[i], math.log(density(i, i, list(range(d)))))
        joint = sum(weight(i, j) * density(i, j, list(range(d))) for j in range(b))
        assert math.isclose(got.log_qz[i], math.log(joint), rel_tol=1e-12)
        for k in range(d):
            marginal = sum(weight(i, j) * density(i, j, [k]) for j in range(b))
            assert math.isclose(got.log_qz_dims[i, k], math.log(marginal), rel_tol=1e-12)


def test_stratified_estimate_of_q_is_unbiased_over_every_batch() -> None:
    """Over every ordered batch of B distinct examples that holds example 0, the stratified
    estimate of q(z) at a point averages to the exact (1/N) sum_n q(z | x_n)."""
    n, b, d = 5, 3, 2
    _, mean, log_var = _params(n, d, seed=3)
    point = torch.tensor([0.3, -0.2], dtype=torch.float64)
    exact_joint = pairwise_log_density(point[None], mean, log_var).sum(-1).exp().mean()
    exact_dims = pairwise_log_density(point[None], mean, log_var).exp().mean(1)[0]
    joints, dims = [], []
    for batch in itertools.permutations(range(n), b):
        if 0 not in batch:
            continue
        i = batch.index(0)
        z = torch.zeros(b, d, dtype=torch.float64)
        z[i] = point
        est = aggregate_log_densities(z, mean[list(batch)], log_var[list(batch)], n, "mss")
        joints.append(est.log_qz[i].exp())
        dims.append(est.log_qz_dims[i].exp())
    torch.testing.assert_close(torch.stack(joints).mean(), exact_joint)
    torch.testing.assert_close(torch.stack(dims).mean(0), exact_dims)


def test_gradients_reach_every_input() -> None:
    z, mean, log_var = (t.clone().requires_grad_() for t in _params(6, 2))
    d = aggregate_log_densities(z, mean, log_var, 100)
    (d.log_qz.sum() + d.log_qz_dims.sum() + d.log_qz_x.sum()).backward()
    for t in (z, mean, log_var):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_bad_input_is_named() -> None:
    z, mean, log_var = _params(4, 2)
    with pytest.raises(ValueError, match=r"dataset_size .* at least the batch size"):
        aggregate_log_densities(z, mean, log_var, 3)
    with pytest.raises(ValueError, match="estimator must be 'mws' or 'mss'"):
        aggregate_log_densities(z, mean, log_var, 10, "iwae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 examples per batch"):
        aggregate_log_densities(z[:1], mean[:1], log_var[:1], 10, "mss")
    assert aggregate_log_densities(z[:1], mean[:1], log_var[:1], 10, "mws").log_qz.shape == (1,)
    with pytest.raises(ValueError, match="one sample per example"):
        aggregate_log_densities(z[:3], mean, log_var, 10)
    with pytest.raises(ValueError, match="z must have shape"):
        pairwise_log_density(z[:, :1], mean, log_var)
    with pytest.raises(ValueError, match="same shape"):
        pairwise_log_density(z, mean, log_var[:2])
    with pytest.raises(TypeError, match="z"):
        pairwise_log_density(z.long(), mean, log_var)
    with pytest.raises(ValueError, match="log_var"):
        pairwise_log_density(z, mean, torch.full_like(log_var, math.nan))
    with pytest.raises(TypeError, match="dataset_size"):
        log_importance_weights(4, 10.0, "mss")  # type: ignore[arg-type]
