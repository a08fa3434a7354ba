"""Bits per dimension of known distributions, for discrete and continuous likelihoods."""

from __future__ import annotations

import math

import pytest
import torch

from torchvae import (
    Bernoulli,
    ContinuousBernoulli,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Gaussian,
    bits_per_dim,
    dequantize,
)
from torchvae.likelihoods import _logistic as L

F64 = torch.float64
LEVELS = torch.arange(256, dtype=F64)


def test_uniform_over_256_levels_is_8_bits_under_a_discrete_likelihood() -> None:
    # 256 equally weighted components of the smallest scale, one on each level: nearly
    # uniform masses (a level keeps 99.4% of its component, neighbours share the rest).
    like = DiscretizedLogisticMixture(n_mix=256)
    logits = torch.cat([torch.zeros(256), LEVELS / 255 - 0.5, torch.full((256,), -20.0)]).view(
        1, 768, 1, 1
    )
    x = (LEVELS / 255).view(256, 1, 1, 1)  # every level once: the uniform distribution
    nll = -like.log_prob(logits.expand(256, -1, -1, -1), x).mean()
    bpd = float(bits_per_dim(nll, 1, like))
    assert 8.0 <= bpd < 8.01  # >= 8 for any model of uniform data (Gibbs' inequality)


def test_dequantized_uniform_under_a_uniform_density_is_exactly_8_bits() -> None:
    x = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8)
    y = dequantize(x, torch.Generator().manual_seed(0))
    like = ContinuousBernoulli()  # logits 0: the density 1 on [0, 1]
    nll = -like.log_prob(torch.zeros_like(y), y).mean()
    assert float(nll) == 0.0
    assert bits_per_dim(float(nll), 48, like, dequantized=True) == pytest.approx(8.0, abs=1e-12)
    assert bits_per_dim(float(nll), 48, like) == 0.0


def test_dequantized_uniform_under_the_best_gaussian() -> None:
    # y uniform on [0, 1): N(1/2, 1/12) costs 1/2 log(2 pi e / 12) nats more than uniform.
    g = torch.Generator().manual_seed(1)
    y = dequantize(torch.randint(0, 256, (4000, 64), dtype=torch.uint8, generator=g), g)
    like = Gaussian(scale=math.sqrt(1 / 12))
    nll = -like.log_prob(torch.zeros_like(y), y).mean()
    want = 8 + 0.5 * math.log2(2 * math.pi * math.e / 12)
    assert float(bits_per_dim(nll, 64, like, dequantized=True)) == pytest.approx(want, abs=2e-3)


def test_discrete_bits_are_the_entropy() -> None:
    like = DiscretizedLogistic(scale=0.05, learn_scale=False)
    logits = torch.zeros(1, 1)
    masses = like.double().log_prob_elementwise(logits.double(), (LEVELS / 255).view(256, 1)).exp()
    entropy_bits = float(-(masses * masses.log2()).sum())
    draws = like.sample(logits.expand(100_000, 1), generator=torch.Generator().manual_seed(2))
    assert bool(L.on_grid(draws))
    nll = -like.log_prob(logits.expand(100_000, 1), draws).mean()
    assert float(bits_per_dim(nll, 1, like)) == pytest.approx(entropy_bits, abs=0.02)


def test_a_fair_coin_per_pixel_is_one_bit() -> None:
    x = torch.randint(0, 2, (10, 784)).float()
    nll = -Bernoulli().log_prob(torch.zeros_like(x), x).mean()
    assert float(bits_per_dim(nll, 784, Bernoulli())) == pytest.approx(1.0, rel=1e-6)


def test_the_rule_refuses_what_does_not_apply() -> None:
    for like in (DiscretizedLogistic(), DiscretizedLogisticMixture(), Bernoulli()):
        with pytest.raises(ValueError, match="discrete likelihood"):
            bits_per_dim(100.0, 784, like, dequantized=True)
    with pytest.raises(TypeError, match="Likelihood"):
        bits_per_dim(1.0, 4, "gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="levels"):
        bits_per_dim(1.0, 4, levels=1)
    with pytest.raises(TypeError, match="dequantized"):
        bits_per_dim(1.0, 4, dequantized=1)  # type: ignore[arg-type]
    assert bits_per_dim(torch.tensor([0.0]), 4, dequantized=True, levels=16).tolist() == [4.0]
