"""Uniform dequantization: each value in its own bin, uniform within it, reproducible."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchvae.data import TensorLoader
from torchvae.data.dequantization import dequantization_correction, dequantize


@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_every_value_stays_in_its_bin(shape: list[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    y = dequantize(x, gen)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert bool((y >= 0).all()) and bool((y < 1).all())
    assert torch.equal(torch.floor(y * 256).to(torch.uint8), x)


def test_the_extremes_stay_in_their_bins() -> None:
    x = torch.tensor([0, 255] * 50_000, dtype=torch.uint8)
    y = dequantize(x, torch.Generator().manual_seed(0))
    assert float(y.max()) < 1.0 and float(y[::2].max()) < 1 / 256
    assert torch.equal(torch.floor(y * 256).to(torch.uint8), x)


def test_noise_is_uniform_within_the_bin() -> None:
    x = torch.full((200_000,), 17, dtype=torch.uint8)
    u = dequantize(x, torch.Generator().manual_seed(1)) * 256 - 17
    # U(0, 1): mean 1/2, variance 1/12; standard errors about 6.5e-4 and 1.9e-4
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    counts = torch.histc(u, bins=10, min=0, max=1)
    assert float(counts.min()) > 0.9 * 20_000 and float(counts.max()) < 1.1 * 20_000


def test_reproducible_with_a_generator() -> None:
    x = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    a = dequantize(x, torch.Generator().manual_seed(5))
    b = dequantize(x, torch.Generator().manual_seed(5))
    c = dequantize(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="must be uint8"):
        dequantize(torch.rand(3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        dequantize([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        dequantize(torch.zeros(2, dtype=torch.uint8), generator=3)  # type: ignore[arg-type]


def test_correction_is_log_levels_per_dimension() -> None:
    assert dequantization_correction(3072) == pytest.approx(3072 * 8 * math.log(2))
    assert dequantization_correction(784, levels=2) == pytest.approx(784 * math.log(2))
    with pytest.raises(ValueError, match="levels must be >= 2"):
        dequantization_correction(10, levels=1)
    with pytest.raises(ValueError, match="dims"):
        dequantization_correction(0)


def test_correction_turns_a_bin_constant_density_into_the_pmf() -> None:
    """For p(y) = 256 P(floor(256 y)), constant on each bin, the bound is tight:
    -log p(y) + log 256 = -log P(x) for every dequantized y of x."""
    gen = torch.Generator().manual_seed(2)
    pmf = torch.rand(256, generator=gen, dtype=torch.float64) + 0.01
    pmf /= pmf.sum()
    x = torch.multinomial(pmf, 5000, replacement=True, generator=gen).to(torch.uint8)
    y = dequantize(x, gen)
    density_nll = -torch.log(256 * pmf[torch.floor(y * 256).long()])
    discrete_nll = -torch.log(pmf[x.long()])
    assert torch.allclose(density_nll + dequantization_correction(1), discrete_nll)


def test_tensor_loader_dequantizes_each_epoch_afresh_and_reproducibly() -> None:
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    loader = TensorLoader(images, batch_size=4, dequantize=True, seed=3)
    epoch0, epoch1 = torch.cat(list(loader)), torch.cat(list(loader))
    assert torch.equal(torch.floor(epoch0 * 256).to(torch.uint8), images)
    assert not torch.equal(epoch0, epoch1)
    loader.set_epoch(0)
    assert torch.equal(torch.cat(list(loader)), epoch0)
    again = TensorLoader(images, batch_size=4, dequantize=True, seed=3)
    assert torch.equal(torch.cat(list(again)), epoch0)
    assert loader.in_unit_interval


def test_tensor_loader_dequantize_needs_uint8_and_no_binarization() -> None:
    with pytest.raises(TypeError, match="needs uint8"):
        TensorLoader(torch.rand(4, 3, 2, 2), dequantize=True)
    with pytest.raises(ValueError, match="exclude each other"):
        TensorLoader(torch.zeros(4, 2, 2, dtype=torch.uint8), dequantize=True, binarize="dynamic")
