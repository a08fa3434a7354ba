"""The VAE: composition, sampling, interpolation, pluggable modules and bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from torchvae.gaussian import GaussianParams
from torchvae.likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from torchvae.models.decoders import ConvDecoder, Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.losses import ELBOLoss


def small_vae(features: int = 12, latent: int = 2) -> VAE:
    return VAE(Encoder(features, 6, latent), Decoder(latent, 6, features))


class TupleEncoder(nn.Module):
    """A user-written encoder: returns a plain tuple, has ``latent_dim``."""

    def __init__(self, features: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Linear(features, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.net(x.flatten(1)).chunk(2, dim=-1)
        return mean, log_var


class ProbabilityDecoder(nn.Module):
    """A user-written decoder with only ``forward``, returning probabilities."""

    def __init__(self, latent_dim: int, features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, features), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out


def test_user_modules_plug_in() -> None:
    model = VAE(TupleEncoder(12, 3), ProbabilityDecoder(3, 12))
    assert model.latent_dim == 3
    x = torch.rand(4, 1, 3, 4)
    out = model(x)
    assert isinstance(out, VAEOutput)
    assert out.x_hat.shape == x.shape and out.posterior.mean.shape == (4, 3)
    # The VAE recovers logits from the probabilities, so x_hat is the decoder's output.
    torch.testing.assert_close(out.x_hat, model.decoder(out.z).reshape(x.shape))
    loss = ELBOLoss()(out, x)
    loss.total.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.sample(5).shape == (5, 12)
    assert model.interpolate(x[:1], x[1:2], steps=3).shape == (3, 1, 1, 3, 4)


def test_probability_decoder_saturation_stays_finite() -> None:
    decoder = ProbabilityDecoder(2, 5)
    with torch.no_grad():
        decoder.net[0].weight.fill_(1e3)
    model = VAE(TupleEncoder(5, 2), decoder)
    logits = model.decode_logits(torch.full((1, 2), 10.0))
    assert bool(torch.isfinite(logits).all())


def test_forward_with_flat_and_image_input() -> None:
    model = VAE(Encoder(16, 5, 2), ConvDecoder(2, output_shape=(1, 4, 4), channels=(3,)))
    for x in (torch.rand(3, 16), torch.rand(3, 1, 4, 4)):
        out = model(x)
        assert out.x_hat.shape == out.logits.shape == x.shape
        assert out.mean.shape == out.log_var.shape == out.z.shape == (3, 2)
        many = model(x, n_samples=4)
        assert many.logits.shape == (4, *x.shape) and many.z.shape == (4, 3, 2)
        assert bool(((out.x_hat >= 0) & (out.x_hat <= 1)).all())


def test_output_parts() -> None:
    model = small_vae()
    out = model(torch.rand(2, 12))
    torch.testing.assert_close(out.x_hat, torch.sigmoid(out.logits))
    assert isinstance(out.posterior, GaussianParams)
    assert torch.equal(out.posterior.mean, out.mean)


def test_distributions() -> None:
    model = small_vae().double()
    x = torch.rand(3, 12, dtype=torch.float64)
    q = model.posterior(x)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    torch.testing.assert_close(q.mean, model.encode(x).mean)
    prior = model.prior()
    assert prior.event_shape == (2,) and prior.mean.dtype == torch.float64


def test_decode_shapes() -> None:
    model = small_vae()
    assert model.decode(torch.randn(5, 2)).shape == (5, 12)
    assert model.decode(torch.randn(3, 5, 2)).shape == (3, 5, 12)
    assert model.decode_logits(torch.randn(5, 2)).shape == (5, 12)


def test_eval_mode_reconstruct_and_sampled_reconstruct() -> None:
    model = small_vae().eval()
    x = torch.rand(4, 12)
    mean = model.encode(x).mean
    torch.testing.assert_close(model.reconstruct(x), model.decode(mean))
    gen = torch.Generator
    a = model.reconstruct(x, sample=True, generator=gen().manual_seed(1))
    b = model.reconstruct(x, sample=True, generator=gen().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, model.reconstruct(x))
    assert not model.reconstruct(x).requires_grad


@given(n=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_sample_is_reproducible_with_a_generator(n: int, seed: int) -> None:
    torch.manual_seed(0)
    model = small_vae()
    a = model.sample(n, generator=torch.Generator().manual_seed(seed))
    b = model.sample(n, generator=torch.Generator().manual_seed(seed))
    assert a.shape == (n, 12) and torch.equal(a, b)
    assert bool(((a >= 0) & (a <= 1)).all())


def test_sample_temperature() -> None:
    model = small_vae()
    cold = model.sample(3, temperature=0.0)
    expected = model.decode(torch.zeros(3, 2))
    torch.testing.assert_close(cold, expected)
    gen = torch.Generator
    hot = model.sample(3, generator=gen().manual_seed(2), temperature=2.0)
    z = 2.0 * torch.randn(3, 2, generator=gen().manual_seed(2))
    torch.testing.assert_close(hot, model.decode(z))


def test_interpolate_endpoints_are_the_reconstructions() -> None:
    model = small_vae().eval()
    x1, x2 = torch.rand(2, 12), torch.rand(2, 1, 3, 4).reshape(2, 12)
    path = model.interpolate(x1, x2, steps=5)
    assert path.shape == (5, 2, 12)
    torch.testing.assert_close(path[0], model.reconstruct(x1))
    torch.testing.assert_close(path[-1], model.reconstruct(x2))
    midpoint = model.decode(0.5 * (model.encode(x1).mean + model.encode(x2).mean))
    torch.testing.assert_close(path[2], midpoint)


def test_float64_model_accepts_float32_input() -> None:
    model = small_vae().double()
    out = model(torch.rand(2, 12))
    assert out.logits.dtype == torch.float64
    assert model.reconstruct(torch.rand(2, 12)).dtype == torch.float64
    assert model.decode(torch.randn(2, 2)).dtype == torch.float64


# --- bad input -------------------------------------------------------------------------


def test_wrong_feature_size() -> None:
    with pytest.raises(ValueError, match=r"x must have 12 features .* got shape \(2, 11\)"):
        small_vae()(torch.rand(2, 11))
    with pytest.raises(ValueError, match=r"decoder gives 10 features .* examples of shape \(12,\)"):
        VAE(Encoder(12, 4, 2), Decoder(2, 4, 10))  # caught when built, not at the loss
    model = VAE(TupleEncoder(12, 2), ProbabilityDecoder(2, 10))  # sizes it cannot know
    with pytest.raises(ValueError, match="decoder output has 10 features per example but x has 12"):
        model(torch.rand(2, 12))


def test_wrong_rank() -> None:
    model = small_vae()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, \.\.\.\), got shape \(12,\)"):
        model(torch.rand(12))
    with pytest.raises(ValueError, match=r"x must have shape \(batch"):
        model.reconstruct(torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"z must have shape .*latent_dim = 2, got shape \(2,\)"):
        model.decode(torch.randn(2))
    with pytest.raises(ValueError, match=r"z must have shape .* got shape \(4, 3\)"):
        model.decode_logits(torch.randn(4, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input(bad: float) -> None:
    model = small_vae()
    x = torch.rand(2, 12)
    x[1, 3] = bad
    with pytest.raises(ValueError, match="x must be finite, got"):
        model(x)
    with pytest.raises(ValueError, match="x must be finite"):
        model.encode(x)
    with pytest.raises(ValueError, match="x2 must be finite"):
        model.interpolate(torch.rand(2, 12), x)
    z = torch.zeros(1, 2)
    z[0, 0] = bad
    with pytest.raises(ValueError, match="z must be finite"):
        model.decode(z)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_and_bool_tensors(dtype: torch.dtype) -> None:
    model = small_vae()
    x = torch.ones(2, 12, dtype=dtype)
    with pytest.raises(TypeError, match=f"x must be a floating-point tensor, got dtype {dtype}"):
        model(x)
    with pytest.raises(TypeError, match="z must be a floating-point tensor"):
        model.decode(torch.zeros(2, 2, dtype=dtype))


def test_uint8_hint_and_non_tensor() -> None:
    with pytest.raises(TypeError, match=r"x\.float\(\) / 255"):
        small_vae()(torch.zeros(1, 12, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor, got list"):
        small_vae()([[0.0] * 12])  # type: ignore[arg-type]


def test_device_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match="x is on meta but the model's parameters are on cpu"):
        small_vae()(torch.empty(2, 12, device="meta"))


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_counts(n: int) -> None:
    model = small_vae()
    with pytest.raises(ValueError, match=rf"n_samples must be a positive int \(>= 1\), got {n}"):
        model(torch.rand(2, 12), n_samples=n)
    with pytest.raises(ValueError, match=rf"n must be a positive int \(>= 1\), got {n}"):
        model.sample(n)
    with pytest.raises(ValueError, match=r"steps must be"):
        model.interpolate(torch.rand(1, 12), torch.rand(1, 12), steps=n)


def test_other_bad_arguments() -> None:
    model = small_vae()
    with pytest.raises(TypeError, match=r"n must be a positive int, got float 2\.0"):
        model.sample(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be a positive int, got bool True"):
        model.sample(True)
    with pytest.raises(ValueError, match="steps must be >= 2 to include both ends, got 1"):
        model.interpolate(torch.rand(1, 12), torch.rand(1, 12), steps=1)
    with pytest.raises(ValueError, match=r"x1 and x2 must have the same shape, got \(1, 12\)"):
        model.interpolate(torch.rand(1, 12), torch.rand(2, 12))
    for t in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
            model.sample(2, temperature=t)


def test_bad_modules() -> None:
    with pytest.raises(TypeError, match=r"encoder must be a torch\.nn\.Module, got function"):
        VAE(lambda x: x, Decoder(2, 4, 12))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"decoder must be a torch\.nn\.Module, got str"):
        VAE(Encoder(12, 4, 2), "decoder")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="encoder or decoder must have an int attribute latent_dim"
    ):
        VAE(nn.Identity(), nn.Identity())
    with pytest.raises(ValueError, match=r"encoder.latent_dim \(2\) and decoder.latent_dim \(3\)"):
        VAE(Encoder(12, 4, 2), Decoder(3, 4, 12))


def test_encoder_returning_the_wrong_shape_is_named() -> None:
    model = VAE(TupleEncoder(12, 3), ProbabilityDecoder(3, 12))
    model.latent_dim = 4
    with pytest.raises(ValueError, match=r"encoder must return mean and log_var .* \(2, 4\)"):
        model(torch.rand(2, 12))


# --- the likelihood's mean ----------------------------------------------------------------


def test_samples_and_reconstructions_of_unbounded_data_are_the_gaussian_mean() -> None:
    """Data around 5.0 with an identity-link Gaussian: samples around 5.0, not a sigmoid."""
    from torchvae.training.trainer import Trainer

    torch.manual_seed(0)
    x = 5.0 + 0.1 * torch.randn(256, 6)
    model = VAE(
        Encoder(6, 16, 2), Decoder(2, 16, 6), likelihood=Gaussian(scale=1.0, link="identity")
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    Trainer(model, optimizer=optimizer, device="cpu", seed=0, batch_size=64).fit(x, epochs=50)
    model.eval()
    samples = model.sample(500, generator=torch.Generator().manual_seed(0))
    assert abs(samples.mean().item() - 5.0) < 0.3
    assert (model.reconstruct(x[:50]) - x[:50]).abs().mean().item() < 0.3
    assert abs(model.interpolate(x[:1], x[1:2], steps=3).mean().item() - 5.0) < 0.3


@pytest.mark.parametrize(
    "likelihood", [Bernoulli(), ContinuousBernoulli(), Gaussian(0.2, link="identity")], ids=repr
)
def test_decode_sample_and_reconstruct_return_the_mean_and_draws_when_asked(
    likelihood: Likelihood,
) -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(12, 6, 2), Decoder(2, 6, 12), likelihood=likelihood).eval()
    z = torch.randn(5, 2)
    logits = model.decode_logits(z)
    torch.testing.assert_close(model.decode(z), likelihood.mean(logits))
    gen = torch.Generator
    prior_z = torch.randn(4, 2, generator=gen().manual_seed(3))
    torch.testing.assert_close(
        model.sample(4, generator=gen().manual_seed(3)),
        likelihood.mean(model.decode_logits(prior_z)),
    )
    x = torch.rand(3, 12)
    torch.testing.assert_close(
        model.reconstruct(x), likelihood.mean(model.decode_logits(model.encode(x).mean))
    )
    draws = model.sample(200, generator=gen().manual_seed(4), draw=True)
    means = model.sample(200, generator=gen().manual_seed(4))
    assert not torch.equal(draws, means)
    if isinstance(likelihood, Bernoulli):
        assert set(draws.unique().tolist()) <= {0.0, 1.0}
    else:
        # draws scatter around the mean: their average is near it
        assert (draws - means).mean().abs().item() < 0.1
    out = model(x)
    assert out.x_hat.shape == x.shape
    torch.testing.assert_close(out.x_hat, likelihood.mean(out.logits))


def test_the_continuous_bernoulli_mean_is_not_the_sigmoid() -> None:
    logits = torch.tensor([[-60.0, -3.0, -1e-4, 0.0, 2e-3, 0.5, 40.0]], dtype=torch.float64)
    mean = ContinuousBernoulli().mean(logits)
    lam = torch.sigmoid(logits)
    # lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) where it can be evaluated in
    # float64, its series near 1/2, and its asymptotes -1/l and 1 - 1/l far out
    direct = lam / (2 * lam - 1) + 1 / (2 * torch.atanh(1 - 2 * lam))
    exact = torch.where(logits.abs() > 1e-2, direct, 0.5 + logits / 12)
    exact = torch.where(logits < -30, -1 / logits, torch.where(logits > 30, 1 - 1 / logits, exact))
    torch.testing.assert_close(mean, exact, rtol=1e-6, atol=1e-9)
    assert not torch.allclose(mean, lam)
    draws = ContinuousBernoulli().sample(
        torch.full((20_000,), -3.0, dtype=torch.float64), torch.Generator().manual_seed(0)
    )
    assert abs(draws.mean().item() - mean[0, 1].item()) < 4 * draws.std().item() / 141
