"""The ELBO and IWAE losses: conventions, parts, beta, free bits, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchvae.gaussian import gaussian_kl
from torchvae.likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from torchvae.models.decoders import ConvDecoder, Decoder
from torchvae.models.encoders import ConvEncoder, Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.losses import ELBOLoss, IWAELoss, LossOutput


def small_vae() -> VAE:
    return VAE(Encoder(12, 6, 3), Decoder(3, 6, 12))


def test_elbo_convention_sum_over_features_mean_over_batch() -> None:
    model = small_vae()
    x = torch.rand(5, 12)
    out = model(x)
    loss = ELBOLoss()(out, x)
    assert isinstance(loss, LossOutput)
    bce = F.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / 5
    kl = gaussian_kl(out.mean, out.log_var)
    torch.testing.assert_close(loss.reconstruction, bce)
    torch.testing.assert_close(loss.kl, kl.sum() / 5)
    torch.testing.assert_close(loss.kl_per_dim, kl.mean(0))
    torch.testing.assert_close(loss.total, bce + kl.sum() / 5)
    assert loss.kl_per_dim.shape == (3,)


def test_elbo_times_batch_is_the_textbook_loss() -> None:
    model = small_vae()
    x = torch.rand(7, 12)
    out = model(x)
    textbook = F.binary_cross_entropy(out.x_hat, x, reduction="sum") - 0.5 * torch.sum(
        1 + out.log_var - out.mean.pow(2) - out.log_var.exp()
    )
    torch.testing.assert_close(ELBOLoss()(out, x).total * 7, textbook)


def test_image_shaped_input_gives_the_same_loss() -> None:
    model = VAE(
        ConvEncoder(2, input_shape=(1, 4, 4), channels=(3,)), ConvDecoder(2, (1, 4, 4), (3,))
    )
    x = torch.rand(3, 1, 4, 4)
    gen = torch.Generator
    a = ELBOLoss()(model(x, generator=gen().manual_seed(0)), x)
    b = ELBOLoss()(model(x.flatten(1), generator=gen().manual_seed(0)), x.flatten(1))
    torch.testing.assert_close(a.total, b.total)


@pytest.mark.parametrize("beta", [0.0, 0.5, 4.0])
def test_beta_scales_only_the_kl(beta: float) -> None:
    model = small_vae()
    x = torch.rand(4, 12)
    out = model(x)
    plain, weighted = ELBOLoss()(out, x), ELBOLoss(beta=beta)(out, x)
    torch.testing.assert_close(weighted.total, plain.reconstruction + beta * plain.kl)
    torch.testing.assert_close(weighted.kl, plain.kl)
    loss = ELBOLoss()
    loss.beta = beta  # schedules set it between steps
    torch.testing.assert_close(loss(out, x).total, weighted.total)


def test_free_bits_floor_each_dimension_but_report_the_true_kl() -> None:
    model = small_vae()
    x = torch.rand(4, 12)
    out = model(x)
    loss = ELBOLoss(free_bits=0.5)(out, x)
    per_dim = gaussian_kl(out.mean, out.log_var).mean(0)
    torch.testing.assert_close(loss.total, loss.reconstruction + per_dim.clamp_min(0.5).sum())
    torch.testing.assert_close(loss.kl, per_dim.sum())


def test_free_bits_stop_the_gradient_below_the_floor() -> None:
    model = small_vae()
    x = torch.rand(4, 12)
    out = model(x)
    loss = ELBOLoss(free_bits=1e6)(out, x)
    kl_only = loss.total - loss.reconstruction
    (grad,) = torch.autograd.grad(kl_only, out.log_var, retain_graph=True)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize(
    "likelihood",
    [Bernoulli(), ContinuousBernoulli(), Gaussian(), Gaussian(learn_scale=True)],
    ids=repr,
)
def test_every_likelihood_gives_a_finite_differentiable_loss(likelihood: Likelihood) -> None:
    model = VAE(Encoder(12, 6, 3), Decoder(3, 6, 12), likelihood=likelihood)
    x = torch.rand(4, 12)
    loss = ELBOLoss()(model(x), x)
    assert bool(torch.isfinite(loss.total))
    loss.total.backward()
    params = [*model.parameters(), *likelihood.parameters()]
    assert all(p.grad is not None and bool((p.grad != 0).any()) for p in params)
    torch.testing.assert_close(ELBOLoss(likelihood)(model(x), x).kl, loss.kl)  # the model's own


def test_several_samples_average_the_reconstruction() -> None:
    model = small_vae()
    x = torch.rand(4, 12)
    out = model(x, n_samples=3)
    loss = ELBOLoss()(out, x)
    per_sample = [-Bernoulli().log_prob(out.logits[i], x).mean() for i in range(3)]
    torch.testing.assert_close(loss.reconstruction, torch.stack(per_sample).mean())


def test_iwae_with_one_sample_is_the_single_sample_elbo() -> None:
    model = small_vae().double()
    x = torch.rand(4, 12, dtype=torch.float64)
    out = model(x, n_samples=1)
    iwae = IWAELoss(k=1)(out, x)
    q = out.posterior
    z = out.z[0]
    log_w = (
        Bernoulli().log_prob(out.logits[0], x)
        - 0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)
        - q.log_prob(z)
    )
    torch.testing.assert_close(iwae.total, -log_w.mean())
    assert iwae.kl_per_dim.shape == (3,)


def test_iwae_is_never_looser_than_the_elbo_on_the_same_samples() -> None:
    model = small_vae().double()
    x = torch.rand(6, 12, dtype=torch.float64)
    out = model(x, n_samples=8)
    iwae = IWAELoss(k=8)(out, x)
    # log-mean-exp >= mean (Jensen), per example and hence on average.
    from torchvae.objectives.importance import importance_log_weights

    log_w, _ = importance_log_weights(out, x, Bernoulli())
    assert iwae.total.item() <= -log_w.mean().item() + 1e-12


def test_float64_model_with_float32_targets_keeps_float64() -> None:
    x = torch.rand(3, 12)
    for likelihood in (Bernoulli(), ContinuousBernoulli(), Gaussian()):
        model = VAE(Encoder(12, 6, 3), Decoder(3, 6, 12), likelihood=likelihood).double()
        loss = ELBOLoss()(model(x), x)
        assert loss.reconstruction.dtype == loss.total.dtype == torch.float64


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.5, 1.01, float("nan")])
def test_bernoulli_targets_outside_unit_interval(bad: float) -> None:
    model = small_vae()
    x = torch.rand(2, 12)
    out = model(x)
    x[0, 0] = bad
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\] for a Bernoulli likelihood"):
        ELBOLoss()(out, x)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        IWAELoss(2)(model(x.clamp(0, 1).nan_to_num(0.5), n_samples=2), x)


def test_loss_shape_mismatch() -> None:
    model = small_vae()
    out = model(torch.rand(2, 12))
    with pytest.raises(
        ValueError, match=r"x has shape \(3, 12\) but the model's output has shape \(2, 12\)"
    ):
        ELBOLoss()(out, torch.rand(3, 12))


def test_loss_needs_a_vae_output() -> None:
    x = torch.rand(2, 12)
    with pytest.raises(
        TypeError, match="out must be the VAEOutput a VAE's forward returns, got tuple"
    ):
        ELBOLoss()((x, x), x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        out = small_vae()(x)
        ELBOLoss()(out, x.int())


def test_iwae_needs_several_samples() -> None:
    model = small_vae()
    x = torch.rand(2, 12)
    with pytest.raises(ValueError, match=r"call model\(x, n_samples=5\); got z of shape \(2, 3\)"):
        IWAELoss(5)(model(x), x)


@pytest.mark.parametrize("k", [0, -1])
def test_iwae_k_below_one(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be a positive int \(>= 1\), got {k}"):
        IWAELoss(k)
    with pytest.raises(TypeError, match="k must be a positive int, got bool"):
        IWAELoss(True)


def test_bad_loss_arguments() -> None:
    with pytest.raises(ValueError, match="beta must be a finite float >= 0, got -1"):
        ELBOLoss(beta=-1.0)
    with pytest.raises(ValueError, match="beta must be a finite float >= 0, got nan"):
        ELBOLoss(beta=math.nan)
    with pytest.raises(TypeError, match="beta must be a float, got str"):
        ELBOLoss(beta="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"free_bits must be a finite float >= 0, got -0\.1"):
        ELBOLoss(free_bits=-0.1)
    with pytest.raises(TypeError, match="free_bits must be a float, got str"):
        ELBOLoss(free_bits="0")  # type: ignore[arg-type]
    for loss in (ELBOLoss, lambda likelihood: IWAELoss(3, likelihood)):
        with pytest.raises(
            TypeError, match=r"likelihood must be a torchvae Likelihood .* got BCELoss"
        ):
            loss(likelihood=torch.nn.BCELoss())  # type: ignore[operator]


def test_output_types() -> None:
    out = small_vae()(torch.rand(2, 12))
    assert isinstance(out, VAEOutput)
    assert "beta=1" in repr(ELBOLoss()) and "k=3" in repr(IWAELoss(3))
