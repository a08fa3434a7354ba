"""Reconstruction likelihoods against torch.distributions and float64 references."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.distributions import Independent, Normal

from torchvae.likelihoods import (
    Bernoulli,
    ContinuousBernoulli,
    Gaussian,
    Likelihood,
    continuous_bernoulli_log_norm,
)

logit_values = st.floats(-60, 60, width=32)
unit_values = st.floats(0, 1, width=32)


def _pairs(draw_logits: list[float], draw_x: list[float]) -> tuple[Tensor, Tensor]:
    n = min(len(draw_logits), len(draw_x))
    logits = torch.tensor(draw_logits[:n], dtype=torch.float64).view(1, n)
    x = torch.tensor(draw_x[:n], dtype=torch.float64).view(1, n)
    return logits, x


def _reference_log_norm(logits: Tensor) -> Tensor:
    """log C = log(l / tanh(l / 2)) in float64; log 2 where l^2/12 is below rounding."""
    ell = logits.double()
    tiny = ell.abs() < 1e-100
    safe = torch.where(tiny, torch.ones_like(ell), ell)
    return torch.where(tiny, torch.full_like(ell, math.log(2)), (safe / torch.tanh(safe / 2)).log())


@given(st.lists(logit_values, min_size=1, max_size=8), st.lists(st.booleans(), min_size=8))
def test_bernoulli_matches_torch(logits_: list[float], bits: list[bool]) -> None:
    logits, x = _pairs(logits_, [float(b) for b in bits])
    reference = Independent(torch.distributions.Bernoulli(logits=logits), 1).log_prob(x)
    torch.testing.assert_close(Bernoulli().log_prob(logits, x), reference)
    torch.testing.assert_close(Bernoulli().distribution(logits).log_prob(x), reference)


@given(st.lists(logit_values, min_size=1, max_size=8), st.lists(unit_values, min_size=8))
def test_bernoulli_grey_targets_are_negative_bce(logits_: list[float], x_: list[float]) -> None:
    logits, x = _pairs(logits_, x_)
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none")
    # BCE on probabilities clamps log at -100; compare only where it does not bite.
    ok = logits.abs() < 10
    got = Bernoulli().log_prob_elementwise(logits, x)
    torch.testing.assert_close(got[ok], -bce[ok])


def test_bernoulli_is_finite_where_the_sigmoid_saturates() -> None:
    logits = torch.tensor([[-1e4, 1e4, -100.0, 100.0]])
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    value = Bernoulli().log_prob(logits, x)
    assert bool(torch.isfinite(value).all())
    torch.testing.assert_close(value, -torch.tensor([2e4 + 200.0]))


@given(
    st.lists(st.floats(-15, 15, width=32), min_size=1, max_size=8),
    st.lists(unit_values, min_size=8),
)
def test_continuous_bernoulli_matches_torch(logits_: list[float], x_: list[float]) -> None:
    logits, x = _pairs(logits_, x_)
    # torch's own normalizer uses a Taylor expansion in probs near 1/2, accurate to ~1e-6.
    reference = Independent(torch.distributions.ContinuousBernoulli(logits=logits), 1).log_prob(x)
    torch.testing.assert_close(
        ContinuousBernoulli().log_prob(logits, x), reference, atol=1e-5, rtol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_continuous_bernoulli_log_norm_near_zero_and_far_out(dtype: torch.dtype) -> None:
    small = [0.0, 1e-8, -1e-6, 1e-4, -3e-3, 9.99e-3, 1e-2, -1.01e-2, 0.05, 0.5]
    large = [5.0, -20.0, 50.0, -88.0, 200.0, -1e3, 1e4, 3e38]
    logits = torch.tensor(small + large, dtype=dtype)
    got = continuous_bernoulli_log_norm(logits)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(got.double(), _reference_log_norm(logits), rtol=tol, atol=tol)
    # Even function, with C(0) = 2.
    torch.testing.assert_close(continuous_bernoulli_log_norm(-logits), got)
    assert got[0].item() == torch.tensor(math.log(2.0), dtype=dtype).item()
    logits.requires_grad_(True)
    continuous_bernoulli_log_norm(logits).sum().backward()
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())


@given(st.floats(-0.011, 0.011))
def test_continuous_bernoulli_log_norm_is_smooth_across_the_series_switch(ell: float) -> None:
    got = continuous_bernoulli_log_norm(torch.tensor([ell], dtype=torch.float64))
    torch.testing.assert_close(
        got, _reference_log_norm(torch.tensor([ell], dtype=torch.float64)), rtol=1e-13, atol=1e-13
    )


def test_continuous_bernoulli_integrates_to_one() -> None:
    grid = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for ell in (-30.0, -2.0, -1e-3, 0.0, 1e-5, 0.7, 12.0):
        logits = torch.full((1, grid.numel()), ell, dtype=torch.float64)
        density = ContinuousBernoulli().log_prob_elementwise(logits, grid.view(1, -1)).exp()
        assert torch.trapezoid(density[0], grid).item() == pytest.approx(1.0, abs=2e-4)


def test_continuous_bernoulli_mean_matches_torch() -> None:
    logits = torch.tensor([[-3.0, -0.2, 0.4, 5.0]], dtype=torch.float64)
    expected = torch.distributions.ContinuousBernoulli(logits=logits).mean
    torch.testing.assert_close(ContinuousBernoulli().mean(logits), expected)


@pytest.mark.parametrize("link", ["sigmoid", "identity"])
@pytest.mark.parametrize("scale", [0.1, 1.0, 2.5])
def test_gaussian_matches_torch(link: str, scale: float) -> None:
    likelihood = Gaussian(scale=scale, link=link).double()  # type: ignore[arg-type]
    logits = 3 * torch.randn(4, 2, 3, dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64)
    mean = torch.sigmoid(logits) if link == "sigmoid" else logits
    reference = Independent(Normal(mean, scale), 1).log_prob(x)
    got = likelihood.log_prob(logits, x)
    assert got.shape == (4, 2)
    torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(likelihood.mean(logits), mean)
    torch.testing.assert_close(
        likelihood.distribution(logits[0]).log_prob(x), reference[0], rtol=1e-6, atol=1e-6
    )


def test_gaussian_learned_scale_is_a_parameter_with_gradient() -> None:
    fixed, learned = Gaussian(scale=0.5), Gaussian(scale=0.5, learn_scale=True)
    assert list(fixed.parameters()) == [] and "log_scale" in dict(fixed.named_buffers())
    (param,) = learned.parameters()
    logits, x = torch.randn(3, 5), torch.rand(3, 5)
    torch.testing.assert_close(learned.log_prob(logits, x), fixed.log_prob(logits, x))
    learned.log_prob(logits, x).sum().backward()
    # d/d(log s) of sum[-0.5 r^2 / s^2 - log s] = sum[r^2 / s^2 - 1]
    r = x - torch.sigmoid(logits)
    torch.testing.assert_close(param.grad, (r.square() / 0.25 - 1).sum())
    assert "learn_scale=True" in repr(learned)


def test_gaussian_identity_link_scores_unbounded_data() -> None:
    x = torch.tensor([[-7.0, 12.0]])
    value = Gaussian(scale=1.0, link="identity").log_prob(x, x)
    torch.testing.assert_close(value, torch.tensor([-math.log(2 * math.pi)]))


def test_log_prob_broadcasts_samples_and_image_events() -> None:
    logits, x = torch.randn(5, 3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    for likelihood in (Bernoulli(), ContinuousBernoulli(), Gaussian()):
        value = likelihood.log_prob(logits, x)
        assert value.shape == (5, 3)
        torch.testing.assert_close(value[2], likelihood.log_prob(logits[2], x))
        assert likelihood.distribution(logits[0]).event_shape == (1, 4, 4)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", [Bernoulli(), ContinuousBernoulli()], ids=repr)
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_targets_outside_the_unit_interval(likelihood: Likelihood, bad: float) -> None:
    x = torch.rand(2, 3)
    x[0, 1] = bad
    with pytest.raises(
        ValueError,
        match=r"x must lie in \[0, 1\] for a .*Bernoulli likelihood.*got 1 values outside",
    ):
        likelihood.validate_target(x)


def test_gaussian_targets_must_be_finite_and_floating() -> None:
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN"):
        Gaussian().validate_target(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(
        TypeError, match=r"x must be a floating-point tensor, got dtype torch\.int64"
    ):
        Gaussian().validate_target(torch.tensor([[1, 2]]))
    with pytest.raises(
        TypeError, match=r"x must be a floating-point tensor, got dtype torch\.bool"
    ):
        Bernoulli().validate_target(torch.tensor([[True]]))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_gaussian_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be a positive finite float, got"):
        Gaussian(scale=scale)


def test_gaussian_bad_arguments() -> None:
    with pytest.raises(TypeError, match="scale must be a positive float, got str"):
        Gaussian(scale="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="link must be 'sigmoid' or 'identity', got 'exp'"):
        Gaussian(link="exp")  # type: ignore[arg-type]


def test_cpu_bernoulli_kernel_matches_bce_and_its_gradients() -> None:
    """The CPU fast path (log(1 + e^-|l|), vectorized) against torch's BCE with logits."""
    import torch.nn.functional as F

    from torchvae.likelihoods._bernoulli import (
        _FAST_BERNOULLI_MIN_NUMEL,
        _bernoulli_nll,
        _BernoulliNLL,
    )

    torch.manual_seed(0)
    logits = (torch.randn(3, 4, 5, dtype=torch.float64) * 8).requires_grad_()
    x = torch.rand(4, 5, dtype=torch.float64).requires_grad_()  # broadcast over 3 samples
    assert torch.autograd.gradcheck(lambda a, b: _BernoulliNLL.apply(a, b, 1), (logits, x))
    reference = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    got = _BernoulliNLL.apply(logits, x, 1)
    torch.testing.assert_close(got, reference.sum(-1), rtol=0, atol=1e-13)
    # float32, far into both tails and at the largest finite logits: within rounding.
    ell = torch.tensor([-3e38, -1e4, -90.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 90.0, 1e4, 3e38])
    target = torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0, 0.3, 0.0, 1.0, 0.0, 1.0, 1.0])
    exact = F.binary_cross_entropy_with_logits(ell.double(), target.double(), reduction="none")
    got = _BernoulliNLL.apply(ell.view(1, -1), target.view(1, -1), 0).view(-1)
    assert bool(torch.isfinite(got).all())
    assert (got.double() - exact).abs().max().item() <= 1.2e-7 * exact.abs().clamp_min(1).max()
    # Large CPU tensors take the kernel, small ones torch's BCE; both give the same numbers.
    big = torch.randn(2, 1 + _FAST_BERNOULLI_MIN_NUMEL // 784, 784) * 4
    images = torch.rand(big.shape[1:])
    fast = _bernoulli_nll(big, images, 1)
    slow = F.binary_cross_entropy_with_logits(big, images.expand_as(big), reduction="none")
    torch.testing.assert_close(fast, slow.sum(-1), rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(
        Bernoulli()._mean_nll(big, images), slow.sum() / big[..., 0].numel(), rtol=1e-6, atol=0
    )
    # Reduced precision (autocast) is scored in float32, and its gradient comes back bf16.
    for shape in [(2, 6), tuple(big.shape)]:
        half = torch.randn(shape, dtype=torch.bfloat16, requires_grad=True)
        value = Bernoulli()._mean_nll(half, torch.rand(shape[-2:]))
        assert value.dtype == torch.float32
        value.backward()
        assert half.grad is not None and half.grad.dtype == torch.bfloat16
