"""β-TCVAE: the KL's three parts, their estimators, the loss and what it refuses."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from torchvae.gaussian import gaussian_kl, standard_normal_log_prob
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.tcvae import BetaTCVAELoss, kl_decomposition
from torchvae.priors import MixturePrior

D = 12


def bare(mean: Tensor, log_var: Tensor, z: Tensor) -> VAEOutput:
    """A user-written model's output: diagonal Gaussian posterior, N(0, I) prior."""
    return VAEOutput(torch.zeros(mean.shape[0], D, dtype=mean.dtype), mean, log_var, z)


def posterior(b: int, d: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(b, d, generator=g, dtype=torch.float64)
    return mean, torch.randn(b, d, generator=g, dtype=torch.float64) * 0.3 - 0.5


def draw(mean: Tensor, log_var: Tensor, g: torch.Generator) -> Tensor:
    eps = torch.randn(mean.shape, generator=g, dtype=mean.dtype)
    return mean + (0.5 * log_var).exp() * eps


@given(st.integers(2, 8), st.integers(1, 4), st.integers(0, 100), st.sampled_from(["mws", "mss"]))
def test_the_parts_add_up_to_the_sampled_kl(b: int, d: int, extra: int, estimator: str) -> None:
    mean, log_var = posterior(b, d, seed=b * 10 + d)
    z = draw(mean, log_var, torch.Generator().manual_seed(1))
    parts = kl_decomposition(bare(mean, log_var, z), b + extra, estimator)  # type: ignore[arg-type]
    log_q = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(z).sum(-1)
    sampled_kl = (log_q - standard_normal_log_prob(z)).mean()
    torch.testing.assert_close(parts.mi + parts.tc + parts.dim_kl, sampled_kl)


def test_in_expectation_the_parts_add_up_to_the_kl() -> None:
    """Monte Carlo over many samples of a tiny batch: MI + TC + dim-KL -> E[KL] (closed form)."""
    mean, log_var = posterior(4, 2, seed=5)
    g = torch.Generator().manual_seed(2)
    sums = torch.stack(
        [
            torch.stack(kl_decomposition(bare(mean, log_var, draw(mean, log_var, g)), 4)).sum()
            for _ in range(4000)
        ]
    )
    exact = gaussian_kl(mean, log_var).sum(-1).mean()
    standard_error = sums.std() / math.sqrt(sums.numel())
    assert abs(sums.mean() - exact) < 4 * standard_error


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_total_correlation_is_small_for_independent_codes_and_large_for_coupled(
    estimator: str,
) -> None:
    """Means on a full 20x20 grid make q(z) a product of its marginals (TC = 0); means on
    the diagonal make one dimension determine the other (TC = log 20 for tiny variances)."""
    levels = torch.linspace(-2, 2, 20, dtype=torch.float64)
    grid = torch.cartesian_prod(levels, levels)
    diagonal = torch.stack([levels, levels], dim=1).repeat(20, 1)
    log_var = torch.full_like(grid, math.log(1e-4))
    g = torch.Generator().manual_seed(0)
    tc = {}
    for name, mean in (("grid", grid), ("diagonal", diagonal)):
        parts = kl_decomposition(bare(mean, log_var, draw(mean, log_var, g)), 400, estimator)  # type: ignore[arg-type]
        tc[name] = float(parts.tc)
    if estimator == "mss":
        assert abs(tc["grid"]) < 0.05
        assert abs(tc["diagonal"] - math.log(20)) < 0.1
    assert tc["diagonal"] > tc["grid"] + 2.5


def test_loss_weights_each_part() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    x = torch.rand(16, D)
    out = model(x)
    loss = BetaTCVAELoss(dataset_size=160, alpha=2.0, beta=5.0, gamma=0.5, estimator="mws")(out, x)
    assert loss.terms is not None
    mi, tc, dim_kl = (loss.terms[k] for k in ("mi", "tc", "dim_kl"))
    torch.testing.assert_close(loss.total, loss.reconstruction + 2 * mi + 5 * tc + 0.5 * dim_kl)
    torch.testing.assert_close(loss.kl, out.kl.mean())  # type: ignore[union-attr]
    torch.testing.assert_close(loss.reconstruction, -out.log_px_z.mean())  # type: ignore[union-attr]
    plain = BetaTCVAELoss(dataset_size=160, beta=1.0)(out, x)
    sampled_kl = (out.log_qz - standard_normal_log_prob(out.z)).mean()  # type: ignore[operator]
    torch.testing.assert_close(plain.total, plain.reconstruction + sampled_kl)


def test_gradients_reach_every_parameter() -> None:
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    x = torch.rand(16, D)
    BetaTCVAELoss(dataset_size=100)(model(x), x).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_beta_can_be_scheduled() -> None:
    loss = BetaTCVAELoss(dataset_size=100)
    loss.beta = 2.5
    assert loss.beta == 2.5
    with pytest.raises(ValueError, match="beta"):
        loss.beta = -1.0


def test_other_priors_and_posteriors_are_refused() -> None:
    x = torch.rand(8, D)
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D), prior=MixturePrior(3))
    with pytest.raises(ValueError, match=r"diagonal Gaussian posterior .* standard normal prior"):
        BetaTCVAELoss(dataset_size=100)(model(x), x)
    if importlib.util.find_spec("zuko") is not None:
        from torchvae.posteriors import FlowPosterior

        flow = VAE(Encoder(D, 8, 3), Decoder(3, 8, D), posterior=FlowPosterior(1, (4,)))
        with pytest.raises(ValueError, match="FlowPosterior"):
            BetaTCVAELoss(dataset_size=100)(flow(x), x)
    plain = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    with pytest.raises(ValueError, match="one latent sample per example"):
        BetaTCVAELoss(dataset_size=100)(plain(x, n_samples=2), x)


def test_bad_arguments() -> None:
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    x = torch.rand(8, D)
    with pytest.raises(ValueError, match=r"dataset_size .* at least the batch size"):
        BetaTCVAELoss(dataset_size=4)(model(x), x)
    with pytest.raises(ValueError, match="at least 2 examples per batch"):
        BetaTCVAELoss(dataset_size=100)(model(x[:1]), x[:1])
    with pytest.raises(TypeError, match="dataset_size must be an int"):
        BetaTCVAELoss(dataset_size=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dataset_size must be >= 1"):
        BetaTCVAELoss(dataset_size=0)
    with pytest.raises(ValueError, match="estimator"):
        BetaTCVAELoss(dataset_size=10, estimator="exact")  # type: ignore[arg-type]
    for name in ("alpha", "gamma"):
        with pytest.raises(ValueError, match=name):
            BetaTCVAELoss(dataset_size=10, **{name: math.nan})
    with pytest.raises(TypeError, match="VAEOutput"):
        BetaTCVAELoss(dataset_size=10)((1, 2), x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x has shape"):
        BetaTCVAELoss(dataset_size=10)(model(x), x[:, :4])
