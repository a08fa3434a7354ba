"""The discretized logistic and its mixture: normalized masses, a plain float64 reference,
finite values and gradients at extreme parameters, exact means and draws, models around them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from torchvae import (
    VAE,
    ConvDecoder,
    ConvEncoder,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    ELBOLoss,
    IWAELoss,
    log_likelihood,
)
from torchvae.io.serialization import load_model, save_model
from torchvae.likelihoods import DiscretizedLogisticMixtureDistribution
from torchvae.likelihoods import _logistic as L

F64 = torch.float64
LEVELS = torch.arange(256, dtype=F64)
raw_locs = st.floats(-12, 12)  # past the clamp at +-10 too
raw_log_scales = st.floats(-11, 9)  # past the clamps at -7 - ln 2 and 7 too


def plain_masses(mu: float, s: float) -> Tensor:
    """The 256 masses of a discretized logistic, as CDF differences in float64.

    Each difference is taken on the side of the median where the CDF (or the survival
    function) is small, so that it does not cancel.
    """
    edges = torch.cat(
        [torch.tensor([-math.inf]), (LEVELS[1:] - 0.5) / 255, torch.tensor([math.inf])]
    )
    t = (edges.to(F64) - mu) / s
    cdf, sf = torch.sigmoid(t), torch.sigmoid(-t)
    return torch.where(t[:-1] > 0, sf[:-1] - sf[1:], cdf[1:] - cdf[:-1])


def logistic(log_scale: float, predict: bool = False) -> DiscretizedLogistic:
    like = DiscretizedLogistic(scale=math.exp(log_scale), learn_scale=False, predict_scale=predict)
    return like.double()


def mixture_logits(k: int, c: int, g: torch.Generator, scale: float = 1.0) -> Tensor:
    """Random mixture outputs for one pixel: ``(1, K (1 + 2C + C(C-1)/2), 1, 1)``."""
    per = 1 + 2 * c + c * (c - 1) // 2
    logits = torch.randn(1, k * per, 1, 1, generator=g, dtype=F64) * scale
    logits[:, k + k * c : k + 2 * k * c] -= 2.0  # log-scales around e^-2
    return logits


@given(raw_locs, raw_log_scales)
def test_logistic_masses_sum_to_one(loc: float, log_scale: float) -> None:
    like = logistic(log_scale)
    log_p = like.log_prob_elementwise(torch.full((256,), loc, dtype=F64), LEVELS / 255)
    assert bool(torch.isfinite(log_p).all())
    assert abs(float(log_p.exp().sum()) - 1.0) < 1e-12


@given(st.floats(-0.3, 1.3), st.floats(-6, 3))
def test_logistic_matches_the_plain_cdf_difference(mu: float, log_scale: float) -> None:
    like = logistic(log_scale)
    log_p = like.log_prob_elementwise(torch.full((256,), mu - 0.5, dtype=F64), LEVELS / 255)
    direct = plain_masses(mu, float(like.log_scale.exp()))  # the scale as stored
    ok = direct > 1e-250  # where the plain difference has not underflowed
    torch.testing.assert_close(log_p[ok], direct[ok].log(), rtol=1e-9, atol=1e-9)


def test_predicted_scales_are_the_second_half_of_the_channels() -> None:
    like = logistic(0.0, predict=True)
    assert like.params_shape((3, 4, 5)) == (6, 4, 5)
    loc, log_scale = torch.full((1, 3, 4, 5), 0.1, dtype=F64), torch.full((1, 3, 4, 5), -2.0)
    x = torch.randint(0, 256, (1, 3, 4, 5)).to(F64) / 255
    got = like.log_prob(torch.cat([loc, log_scale.to(F64)], dim=1), x)
    want = logistic(-2.0).log_prob(loc, x)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("channels", [1, 2])
def test_mixture_sums_to_one_over_every_pixel_value(channels: int) -> None:
    g = torch.Generator().manual_seed(channels)
    like = DiscretizedLogisticMixture(n_mix=3)
    logits = mixture_logits(3, channels, g, scale=2.0)
    values = torch.cartesian_prod(*[LEVELS] * channels).reshape(-1, channels, 1, 1) / 255
    log_p = like.log_prob(logits.expand(len(values), -1, -1, -1), values)
    assert abs(float(log_p.exp().sum()) - 1.0) < 1e-12


@pytest.mark.slow
def test_rgb_mixture_sums_to_one_over_all_256_cubed_colours() -> None:
    g = torch.Generator().manual_seed(3)
    like = DiscretizedLogisticMixture(n_mix=2)
    params = like._split(mixture_logits(2, 3, g, scale=2.0))  # broadcast over the colours
    gb = torch.cartesian_prod(LEVELS, LEVELS).T.reshape(2, 1, 65536)
    total = 0.0
    for red in range(0, 256, 4):  # 4 red values at a time: 262144 colours per call
        r = (red + torch.arange(4, dtype=F64)).view(1, 4, 1).expand(1, 4, 65536)
        x = torch.cat([r, gb.expand(2, 4, 65536)]).unsqueeze(0) / 255  # (1, 3, 4, 65536)
        total += float(L.mixture_log_prob(params, x).exp().sum())
    assert abs(total - 1.0) < 1e-10


def test_mixture_matches_a_plain_computation() -> None:
    g = torch.Generator().manual_seed(4)
    k, c = 2, 3
    like = DiscretizedLogisticMixture(n_mix=k)
    logits = mixture_logits(k, c, g)
    x = torch.tensor([[12, 200, 255]], dtype=F64).view(1, 3, 1, 1) / 255
    flat = logits.flatten()
    weights = torch.softmax(flat[:k], 0)
    mu = flat[k : k + k * c].view(k, c) + 0.5
    s = flat[k + k * c : k + 2 * k * c].view(k, c).exp()
    alpha = torch.tanh(flat[k + 2 * k * c :].view(k, 3))
    v = [12, 200, 255]
    total = 0.0
    for j in range(k):
        m = [
            mu[j, 0],
            mu[j, 1] + alpha[j, 0] * (v[0] / 255 - 0.5),
            mu[j, 2] + alpha[j, 1] * (v[0] / 255 - 0.5) + alpha[j, 2] * (v[1] / 255 - 0.5),
        ]
        p = 1.0
        for ch in range(3):
            p *= float(plain_masses(float(m[ch]), float(s[j, ch]))[v[ch]])
        total += float(weights[j]) * p
    assert math.isclose(float(like.log_prob(logits, x)), math.log(total), rel_tol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_at_extreme_parameters(dtype: torch.dtype) -> None:
    extremes = torch.tensor([-1e30, -1e4, -50.0, 0.0, 50.0, 1e4, 1e30], dtype=dtype)
    x = torch.tensor([0.0, 1 / 255, 0.5 + 0.5 / 255, 1.0], dtype=dtype)
    loc, log_scale, target = torch.meshgrid(extremes, extremes, x, indexing="ij")
    logits = torch.stack([loc, log_scale]).reshape(1, 2, 7, 28).requires_grad_(True)
    like = DiscretizedLogistic(predict_scale=True).to(dtype)
    value = like.log_prob(logits, target.reshape(1, 1, 7, 28))
    value.sum().backward()
    assert bool(torch.isfinite(value).all()) and logits.grad is not None
    assert bool(torch.isfinite(logits.grad).all())
    mixture = DiscretizedLogisticMixture(n_mix=1)
    pick = torch.randint(0, 7, (50, 10, 1, 1), generator=torch.Generator().manual_seed(0))
    big = extremes[pick].requires_grad_(True)
    rgb = torch.tensor([0.0, 128 / 255, 1.0], dtype=dtype).view(1, 3, 1, 1).expand(50, 3, 1, 1)
    out = mixture.log_prob(big, rgb)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and big.grad is not None
    assert bool(torch.isfinite(big.grad).all())


def test_gradients_match_finite_differences() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 3, 2, 2), generator=g).to(F64) / 255
    mixture = DiscretizedLogisticMixture(n_mix=2)
    logits = torch.randn(2, 20, 2, 2, generator=g, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: mixture.log_prob(t, x), (logits,))
    like = DiscretizedLogistic(predict_scale=True).double()
    two = torch.randn(2, 6, 2, 2, generator=g, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: like.log_prob(t, x), (two,))


@pytest.mark.parametrize("log_scale", [-7.5, -6.0, -5.6, -5.5, -4.0, -1.0, 2.0, 6.5])
def test_logistic_mean_is_the_exact_expectation(log_scale: float) -> None:
    locs = torch.linspace(-1.0, 1.0, 41, dtype=F64)  # mu from -0.5 to 1.5
    like = logistic(log_scale)
    scale = float(like.log_scale.exp())
    got = like.mean(locs)
    want = torch.stack([(plain_masses(float(m) + 0.5, scale) * LEVELS / 255).sum() for m in locs])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)


def _exact_rgb_mean(like: DiscretizedLogisticMixture, logits: Tensor) -> Tensor:
    """E[x] of one RGB pixel by summing over the red and green values (float64)."""
    p = like._split(logits)
    xs = LEVELS / 255
    total = torch.zeros(3, dtype=F64)
    for k in range(like.n_mix):
        mu, ls, a = p.loc[0, k, :, 0, 0], p.log_scale[0, k, :, 0, 0], p.coeffs[0, k, :, 0, 0]
        red = L.log_mass(LEVELS, mu[0], ls[0]).exp()
        loc_green = (mu[1] + a[0] * (xs - 0.5)).view(256, 1)
        green = L.log_mass(LEVELS.view(1, 256), loc_green, ls[1]).exp() * red.view(256, 1)
        loc_blue = mu[2] + a[1] * (xs.view(256, 1) - 0.5) + a[2] * (xs.view(1, 256) - 0.5)
        blue = L.expected_value(loc_blue, ls[2].expand(256, 256))
        means = torch.stack([(red * xs).sum(), (green * xs).sum(), (green * blue).sum()])
        total += p.log_weights[0, k, 0, 0].exp() * means
    return total


def test_mixture_mean_exact_without_coupling_and_close_with_it() -> None:
    g = torch.Generator().manual_seed(6)
    like = DiscretizedLogisticMixture(n_mix=3)
    for _ in range(5):
        logits = mixture_logits(3, 3, g)
        uncoupled = logits.clone()
        uncoupled[:, 21:] = 0.0  # tanh(0) = 0: the channels are independent
        torch.testing.assert_close(
            like.mean(uncoupled)[0, :, 0, 0], _exact_rgb_mean(like, uncoupled), rtol=0, atol=1e-8
        )
        logits[:, 12:21] = -4.0 + 0.5 * torch.randn(1, 9, 1, 1, generator=g, dtype=F64)
        error = (like.mean(logits)[0, :, 0, 0] - _exact_rgb_mean(like, logits)).abs().max()
        assert float(error) < 0.03  # the documented plug-in of the coupled channels
    gray = DiscretizedLogisticMixture(n_mix=4)
    logits = torch.randn(1, 12, 1, 1, generator=g, dtype=F64)
    masses = gray.log_prob(logits.expand(256, -1, -1, -1), (LEVELS / 255).view(256, 1, 1, 1)).exp()
    assert math.isclose(
        float(gray.mean(logits)), float((masses * LEVELS / 255).sum()), abs_tol=1e-8
    )


def test_draws_follow_the_masses() -> None:
    g = torch.Generator().manual_seed(7)
    like = DiscretizedLogisticMixture(n_mix=3)
    logits = torch.randn(1, 9, 1, 1, generator=g)
    logits[:, 6:] = -2.0
    draws = like.sample(logits.expand(100_000, -1, -1, -1), generator=g)
    assert bool(L.on_grid(draws))
    counts = torch.bincount(L.bin_index(draws.flatten()).long(), minlength=256).double()
    masses = like.log_prob(
        logits.double().expand(256, -1, -1, -1), (LEVELS / 255).view(256, 1, 1, 1)
    ).exp()
    sd = (100_000 * masses * (1 - masses)).sqrt()
    assert float(((counts - 100_000 * masses).abs() / (sd + 1)).max()) < 5


def test_rgb_draws_average_to_the_exact_mean() -> None:
    g = torch.Generator().manual_seed(8)
    like = DiscretizedLogisticMixture(n_mix=3)
    logits = mixture_logits(3, 3, g)
    draws = like.sample(logits.expand(200_000, -1, -1, -1), generator=g)
    exact = _exact_rgb_mean(like, logits)
    se = draws.std(0).flatten() / math.sqrt(200_000)
    assert bool(((draws.mean(0).flatten() - exact).abs() < 5 * se + 1e-12).all())
    dist = like.distribution(logits)
    assert isinstance(dist.base_dist, DiscretizedLogisticMixtureDistribution)
    assert dist.sample((2,)).shape == (2, 1, 3, 1, 1)
    torch.testing.assert_close(
        dist.log_prob(draws[:4]), like.log_prob(logits.expand(4, -1, -1, -1), draws[:4])
    )


def test_logistic_draws_average_to_the_mean() -> None:
    g = torch.Generator().manual_seed(9)
    like = DiscretizedLogistic(scale=0.2, learn_scale=False)
    logits = torch.tensor([-0.6, -0.2, 0.0, 0.45, 0.8])
    draws = like.sample(logits.expand(200_000, 5), generator=g)
    se = draws.std(0) / math.sqrt(200_000)
    assert bool(((draws.mean(0) - like.mean(logits)).abs() < 5 * se).all())
    dist = like.distribution(logits.unsqueeze(0))
    torch.testing.assert_close(dist.mean, like.mean(logits.unsqueeze(0)))


def test_bfloat16_targets_keep_their_8_bit_values() -> None:
    v = LEVELS.float() / 255
    assert torch.equal(L.bin_index(v.bfloat16().float()), LEVELS.float())
    like = DiscretizedLogistic(scale=0.1, learn_scale=False)
    logits = torch.zeros(1, 256)
    torch.testing.assert_close(
        like.log_prob(logits.bfloat16(), v.view(1, 256)), like.log_prob(logits, v.view(1, 256))
    )


@pytest.mark.parametrize("like", [DiscretizedLogistic(), DiscretizedLogisticMixture(2)])
def test_targets_must_be_8_bit_values(like: DiscretizedLogistic) -> None:
    logits = torch.zeros(1, *like.params_shape((1, 2, 2)))
    with pytest.raises(ValueError, match=r"8-bit values v / 255.*dequantize=False"):
        like.log_prob(logits, torch.full((1, 1, 2, 2), 0.5))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        like.log_prob(logits, torch.full((1, 1, 2, 2), 2.0))
    with pytest.raises(ValueError, match="finite"):
        like.log_prob(logits, torch.full((1, 1, 2, 2), math.nan))
    assert not bool(like.target_ok(torch.full((2,), 0.5)))
    assert bool(like.target_ok(torch.tensor([0.0, 17 / 255, 1.0])))


def test_mixture_needs_images_and_its_layout() -> None:
    like = DiscretizedLogisticMixture(n_mix=10)
    assert like.params_shape((3, 32, 32)) == (100, 32, 32)
    assert like.params_shape((1, 28, 28)) == (30, 28, 28)
    with pytest.raises(ValueError, match=r"models images \(channels, height, width\)"):
        like.params_shape((784,))
    with pytest.raises(ValueError, match="needs logits"):
        like.mean(torch.zeros(2, 99, 4, 4))
    with pytest.raises(ValueError, match=r"logits must have shape"):
        like.log_prob(torch.zeros(2, 30, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(NotImplementedError, match="distribution"):
        like.distribution_elementwise(torch.zeros(1, 30, 2, 2))
    with pytest.raises(TypeError):
        DiscretizedLogistic(scale="0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_mix"):
        DiscretizedLogisticMixture(0)


LIKELIHOODS = {
    "logistic": lambda: DiscretizedLogistic(),
    "logistic-predicted": lambda: DiscretizedLogistic(predict_scale=True),
    "mixture": lambda: DiscretizedLogisticMixture(n_mix=3),
}


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_models_score_sample_and_save_with_them(name: str, tmp_path: Path) -> None:
    like = LIKELIHOODS[name]()
    shape = (3, 8, 8)
    model = VAE(
        ConvEncoder(4, shape, (8,)), ConvDecoder(4, like.params_shape(shape), (8,)), likelihood=like
    )
    x = torch.randint(0, 256, (5, *shape)).float() / 255
    out = model(x)
    assert out.logits.shape == (5, *like.params_shape(shape)) and out.log_px_z.shape == (5,)
    loss = ELBOLoss()(out, x)
    loss.total.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert IWAELoss(3)(model(x, n_samples=3), x).total.shape == ()
    assert log_likelihood(model, x, k=4).shape == (5,)
    torch.testing.assert_close(
        model(x.flatten(1), generator=torch.Generator().manual_seed(0)).log_px_z,
        model(x, generator=torch.Generator().manual_seed(0)).log_px_z,
    )
    assert model.sample(2).shape == (2, *shape) and model.reconstruct(x).shape == x.shape
    assert bool(L.on_grid(model.sample(2, draw=True)))
    model.eval()
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt").eval()
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x))
    assert loaded.likelihood.config() == like.config()
    with pytest.raises(ValueError, match="needs"):
        VAE(
            ConvEncoder(4, shape, (8,)),
            ConvDecoder(4, shape if name != "logistic" else (6, 8, 8), (8,)),
            likelihood=like,
        )


def test_a_flat_x_for_an_image_likelihood_is_named() -> None:
    like = DiscretizedLogisticMixture(n_mix=2)
    model = VAE(
        ConvEncoder(4, (3, 4, 4), (8,)),
        ConvDecoder(4, like.params_shape((3, 4, 4)), (8,)),
        likelihood=like,
    )
    x = torch.randint(0, 256, (2, 48)).float() / 255
    out = model(x)  # the model takes flat x as its encoder does, and scores it as images
    with pytest.raises(
        ValueError, match=r"pass the x the model was called with.*\(batch, C, H, W\)"
    ):
        ELBOLoss()(out, x)
    assert ELBOLoss()(out, x.view(2, 3, 4, 4)).total.shape == ()


def test_trainer_refuses_dequantized_batches_for_a_discrete_likelihood() -> None:
    from torchvae import TensorLoader, Trainer, resnet_vae

    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    trainer = Trainer(resnet_vae((3, 8, 8), 4, channels=(4,), blocks=1), device="cpu")
    with pytest.raises(ValueError, match="dequantize"):
        trainer.fit(TensorLoader(images, batch_size=4, dequantize=True), epochs=1)


def test_trainer_bits_per_dim_include_the_dequantization_correction() -> None:
    from torchvae import Gaussian, TensorLoader, Trainer, bits_per_dim, resnet_vae

    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    model = resnet_vae((3, 8, 8), 4, likelihood=Gaussian(scale=0.1), channels=(4,), blocks=1)
    metrics = Trainer(model, device="cpu").evaluate(
        TensorLoader(images, batch_size=4, dequantize=True)
    )
    want = bits_per_dim(metrics["loss"], 192, model.likelihood, dequantized=True)
    assert metrics["bits_per_dim"] == pytest.approx(want)
