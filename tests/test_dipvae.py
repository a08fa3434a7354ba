"""DIP-VAE I and II: the covariance, the penalty, and what the loss refuses."""

from __future__ import annotations

import math

import pytest
import torch

from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.dipvae import DIPVAELoss, dip_covariance
from torchvae.priors import MixturePrior

D = 12


def test_covariance_of_each_kind() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(20, 3, generator=g, dtype=torch.float64)
    log_var = torch.randn(20, 3, generator=g, dtype=torch.float64)
    cov_mean = torch.cov(mean.T, correction=0)
    torch.testing.assert_close(dip_covariance(mean, log_var, "i"), cov_mean)
    torch.testing.assert_close(
        dip_covariance(mean, log_var, "ii"), cov_mean + torch.diag(log_var.exp().mean(0))
    )


def test_covariance_of_ii_is_that_of_the_aggregate_posterior() -> None:
    """Cov of z drawn from the mixture of the batch's posteriors, by Monte Carlo."""
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(4, 2, generator=g, dtype=torch.float64)
    log_var = torch.randn(4, 2, generator=g, dtype=torch.float64) * 0.5
    pick = torch.randint(4, (200_000,), generator=g)
    eps = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    z = mean[pick] + (0.5 * log_var[pick]).exp() * eps
    torch.testing.assert_close(
        dip_covariance(mean, log_var, "ii"), torch.cov(z.T), atol=0.02, rtol=0.02
    )


def _output(mean: torch.Tensor, log_var: torch.Tensor) -> VAEOutput:
    return VAEOutput(torch.zeros(mean.shape[0], D, dtype=mean.dtype), mean, log_var, mean)


def test_no_penalty_where_the_covariance_is_the_identity() -> None:
    corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    x = torch.full((4, D), 0.5)
    half = torch.full_like(corners, math.log(0.5))
    for kind, mean, log_var in (("i", corners, half), ("ii", corners * math.sqrt(0.5), half)):
        out = DIPVAELoss(kind, lambda_od=3.0)(_output(mean, log_var), x)  # type: ignore[arg-type]
        assert out.terms is not None
        assert float(out.terms["dip_off_diagonal"]) == pytest.approx(0.0, abs=1e-12)
        assert float(out.terms["dip_diagonal"]) == pytest.approx(0.0, abs=1e-12)
        torch.testing.assert_close(out.total, out.reconstruction + out.kl)


def test_total_weights_the_two_sums() -> None:
    mean = torch.tensor([[2.0, 1.0], [0.0, 0.0], [-2.0, -1.0]], dtype=torch.float64)
    log_var = torch.zeros_like(mean)
    x = torch.full((3, D), 0.5, dtype=torch.float64)
    cov = dip_covariance(mean, log_var, "i")  # [[8/3, 4/3], [4/3, 2/3]]
    off, on = 2 * cov[0, 1] ** 2, (cov[0, 0] - 1) ** 2 + (cov[1, 1] - 1) ** 2
    loss = DIPVAELoss("i", lambda_od=2.0, lambda_d=5.0)(_output(mean, log_var), x)
    torch.testing.assert_close(loss.total, loss.reconstruction + loss.kl + 2 * off + 5 * on)
    assert DIPVAELoss("i", lambda_od=2.0).lambda_d == 20.0
    assert DIPVAELoss("ii", lambda_od=2.0).lambda_d == 2.0


@pytest.mark.parametrize("kind", ["i", "ii"])
def test_gradients_reach_every_parameter(kind: str) -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    x = torch.rand(16, D)
    DIPVAELoss(kind)(model(x), x).total.backward()  # type: ignore[arg-type]
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_input() -> None:
    x = torch.rand(8, D)
    mixture = VAE(Encoder(D, 8, 3), Decoder(3, 8, D), prior=MixturePrior(2))
    with pytest.raises(ValueError, match="standard normal prior"):
        DIPVAELoss()(mixture(x), x)
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    with pytest.raises(ValueError, match="at least 2 examples"):
        DIPVAELoss()(model(x[:1]), x[:1])
    with pytest.raises(ValueError, match="kind must be 'i'"):
        DIPVAELoss("iii")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lambda_od"):
        DIPVAELoss(lambda_od=-1.0)
    with pytest.raises(ValueError, match="lambda_d"):
        DIPVAELoss(lambda_d=math.nan)
    with pytest.raises(ValueError, match="same shape"):
        dip_covariance(torch.zeros(3, 2), torch.zeros(3, 3))
