r"""The ELBO and the IWAE bound for every prior and posterior, against an exact log p(x).

The model: :math:`x \mid z \sim \mathcal{N}(Wz + b, s^2 I_D)` with a two-dimensional
:math:`z`, so that :math:`\log p(x) = \log \int p(x \mid z)\, p(z)\, dz` can be computed
by quadrature on a grid for any prior. The encoder is linear and the flows are moved off
their identity start, so that no posterior is exact and every bound has a gap.
"""
# ruff: noqa: N803

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from torchvae.gaussian import GaussianParams
from torchvae.likelihoods import Gaussian
from torchvae.models.vae import VAE
from torchvae.objectives.importance import log_likelihood
from torchvae.posteriors import DiagonalGaussian, FlowPosterior, Posterior
from torchvae.priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior

pytest.importorskip("zuko")

D, S = 4, 0.5
F64 = torch.float64

PRIORS: dict[str, Callable[[], Prior]] = {
    "standard": StandardNormal,
    "mixture": lambda: MixturePrior(3),
    "vamp": lambda: VampPrior(3),
    "flow": lambda: FlowPrior(transforms=2, hidden_features=(8,)),
}
POSTERIORS: dict[str, Callable[[], Posterior]] = {
    "gaussian": DiagonalGaussian,
    "iaf": lambda: FlowPosterior(transforms=2, hidden_features=(8,)),
    "realnvp": lambda: FlowPosterior(transforms=2, hidden_features=(8,), flow="realnvp"),
}


class LinearDecoder(nn.Module):
    def __init__(self, W: Tensor, b: Tensor) -> None:
        super().__init__()
        self.latent_dim, self.output_dim = W.shape[1], W.shape[0]
        self.W, self.b = nn.Parameter(W.clone()), nn.Parameter(b.clone())

    def logits(self, z: Tensor) -> Tensor:
        return z @ self.W.T + self.b


class LinearEncoder(nn.Module):
    def __init__(self, W: Tensor, b: Tensor) -> None:
        super().__init__()
        self.input_dim, self.latent_dim = W.shape
        Sigma = torch.linalg.inv(torch.eye(W.shape[1], dtype=F64) + W.T @ W / S**2)
        self.A = nn.Parameter(Sigma @ W.T / S**2)  # the standard-normal model's posterior
        self.c = nn.Parameter(-self.A.detach() @ b + 0.3)
        self.log_var = nn.Parameter(Sigma.diagonal().log() + 0.4)

    def forward(self, x: Tensor) -> GaussianParams:
        mean = x @ self.A.T + self.c
        return GaussianParams(mean, self.log_var.expand_as(mean))


def build(prior: str, posterior: str) -> tuple[VAE, Tensor]:
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(D, 2, generator=gen, dtype=F64)
    b = 0.3 * torch.randn(D, generator=gen, dtype=F64)
    torch.manual_seed(1)
    model = VAE(
        LinearEncoder(W, b),
        LinearDecoder(W, b),
        likelihood=Gaussian(scale=S, link="identity"),
        prior=PRIORS[prior](),
        posterior=POSTERIORS[posterior](),
    ).double()
    with torch.no_grad():
        for part in (model.prior, model.posterior_head):
            for p in part.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=F64))
    x = torch.randn(2, 2, generator=gen, dtype=F64) @ W.T + b
    return model, x + S * torch.randn(x.shape, generator=gen, dtype=F64)


def exact_log_px(model: VAE, x: Tensor) -> Tensor:
    """:math:`\\log \\int p(x \\mid z) p(z) dz` on a 2-D grid."""
    side = torch.linspace(-12, 12, 481, dtype=F64)
    z = torch.cartesian_prod(side, side)
    log_cell = 2 * math.log(float(side[1] - side[0]))
    with torch.no_grad():
        log_pz = model.prior.log_prob(z)
        mean = model.decoder.logits(z)
        log_px_z = model.likelihood.log_prob(
            mean[None].expand(x.shape[0], -1, -1).transpose(0, 1), x
        )
    return torch.logsumexp(log_px_z + log_pz[:, None], dim=0) + log_cell


@pytest.mark.parametrize("posterior", sorted(POSTERIORS))
@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_elbo_is_below_log_px_and_iwae_tightens_towards_it(prior: str, posterior: str) -> None:
    model, x = build(prior, posterior)
    log_px = exact_log_px(model, x)
    repeats = 1000
    x_rep = x[:1].expand(repeats, D)
    gen = torch.Generator().manual_seed(2)
    bounds, errors = [], []
    with torch.no_grad():
        for k in (1, 8, 64):
            out = model(x_rep, n_samples=k, generator=gen)
            assert out.log_qz is not None and out.log_pz is not None
            log_w = out.log_px_z + out.log_pz - out.log_qz  # type: ignore[operator]
            per_rep = torch.logsumexp(log_w, 0) - math.log(k)
            bounds.append(per_rep.mean().item())
            errors.append(per_rep.std().item() / math.sqrt(repeats))
        elbo_terms = model(x, n_samples=20_000, generator=gen)
        elbo = elbo_terms.log_px_z.mean(0) - elbo_terms.kl  # type: ignore[union-attr]
    assert bool((elbo < log_px).all()), (elbo, log_px)
    assert log_px[0] - bounds[0] > 0.05, (bounds, log_px)  # a real gap to close
    for i in range(len(bounds) - 1):
        assert bounds[i + 1] > bounds[i] + 3 * math.hypot(errors[i], errors[i + 1]), bounds
    assert bounds[-1] < log_px[0].item() + 3 * errors[-1], (bounds, log_px)


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_log_likelihood_converges_to_the_exact_value(prior: str) -> None:
    model, x = build(prior, "gaussian")
    exact = exact_log_px(model, x)
    for i in range(x.shape[0]):
        x_rep = x[i : i + 1].expand(200, D)  # each row an independent estimate
        estimate = log_likelihood(model, x_rep, k=1000, generator=torch.Generator().manual_seed(3))
        error = estimate.std().item() / math.sqrt(estimate.numel())
        assert abs(estimate.mean().item() - exact[i].item()) < 4 * error + 0.01, (i, error)
