r"""ELBO and IWAE bounds against the exact log-likelihood of a linear-Gaussian model.

The model: :math:`z \sim \mathcal{N}(0, I_d)` and
:math:`x \mid z \sim \mathcal{N}(Wz + b, s^2 I_D)`, so
:math:`p(x) = \mathcal{N}(b, WW^\top + s^2 I)` and the posterior is Gaussian with covariance
:math:`\Sigma = (I + W^\top W / s^2)^{-1}` and mean :math:`\Sigma W^\top (x - b)/s^2`.
The decoder is ``logits(z) = Wz + b`` scored by ``Gaussian(link="identity")``; the encoder
is linear, exact when ``W`` has orthogonal columns and otherwise deliberately off.
"""
# ruff: noqa: N803

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import MultivariateNormal, kl_divergence

from torchvae.gaussian import GaussianParams
from torchvae.likelihoods import Bernoulli, Gaussian
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.importance import bits_per_dim, importance_log_weights, log_likelihood
from torchvae.objectives.losses import ELBOLoss, IWAELoss

D, d, S = 4, 2, 0.5
F64 = torch.float64


class LinearDecoder(nn.Module):
    def __init__(self, W: Tensor, b: Tensor) -> None:
        super().__init__()
        self.latent_dim = W.shape[1]
        self.W, self.b = nn.Parameter(W.clone()), nn.Parameter(b.clone())

    def logits(self, z: Tensor) -> Tensor:
        return z @ self.W.T + self.b


class LinearEncoder(nn.Module):
    def __init__(self, A: Tensor, c: Tensor, log_var: Tensor) -> None:
        super().__init__()
        self.latent_dim = A.shape[0]
        self.A, self.c = nn.Parameter(A.clone()), nn.Parameter(c.clone())
        self.log_var = nn.Parameter(log_var.clone())

    def forward(self, x: Tensor) -> GaussianParams:
        mean = x @ self.A.T + self.c
        return GaussianParams(mean, self.log_var.expand_as(mean))


def posterior_of(W: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(A, c, Sigma)``: the exact posterior mean is ``A x + c``, its covariance ``Sigma``."""
    Sigma = torch.linalg.inv(torch.eye(W.shape[1], dtype=F64) + W.T @ W / S**2)
    A = Sigma @ W.T / S**2
    return A, -A @ b, Sigma


def exact_log_px(W: Tensor, b: Tensor, x: Tensor) -> Tensor:
    cov = W @ W.T + S**2 * torch.eye(W.shape[0], dtype=F64)
    return MultivariateNormal(b, cov).log_prob(x)


def analytic_elbo(model: VAE, x: Tensor) -> Tensor:
    r""":math:`\mathbb{E}_q \log p(x \mid z) - \mathrm{KL}(q \| p)` in closed form."""
    q = model.encode(x)
    W, b = model.decoder.W, model.decoder.b
    residual = x - (q.mean @ W.T + b)
    expected_sq = residual.square().sum(-1) + (W.square() @ q.log_var.exp().T).sum(0)
    log_px_z = -expected_sq / (2 * S**2) - D * math.log(S) - 0.5 * D * math.log(2 * math.pi)
    return log_px_z - q.kl().sum(-1)


def make_model(W: Tensor, b: Tensor, mean_offset: float = 0.0, log_var_shift: float = 0.0) -> VAE:
    """A VAE whose encoder has the exact posterior mean shifted by ``mean_offset``
    posterior standard deviations and the exact marginal log-variances plus ``log_var_shift``.
    """
    A, c, Sigma = posterior_of(W, b)
    std = Sigma.diagonal().sqrt()
    log_var = Sigma.diagonal().log() + log_var_shift
    return VAE(
        LinearEncoder(A, c + mean_offset * std, log_var),
        LinearDecoder(W, b),
        likelihood=Gaussian(scale=S, link="identity"),
    ).double()


@pytest.fixture
def problem() -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(D, d, generator=gen, dtype=F64)
    b = 0.3 * torch.randn(D, generator=gen, dtype=F64)
    z = torch.randn(3, d, generator=gen, dtype=F64)
    x = z @ W.T + b + S * torch.randn(3, D, generator=gen, dtype=F64)
    return W, b, x


LIKELIHOOD = Gaussian(scale=S, link="identity").double()


def test_analytic_elbo_is_below_log_px_by_the_posterior_kl(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    for offset, shift in [(0.0, 0.0), (1.0, -0.5), (-2.0, 1.0)]:
        model = make_model(W, b, offset, shift)
        with torch.no_grad():
            elbo, log_px = analytic_elbo(model, x), exact_log_px(W, b, x)
            q = model.encode(x)
            A, c, Sigma = posterior_of(W, b)
            true_post = MultivariateNormal(x @ A.T + c, Sigma)
            approx = MultivariateNormal(q.mean, torch.diag_embed(q.log_var.exp()))
            gap = kl_divergence(approx, true_post)
        assert bool((elbo < log_px).all())
        torch.testing.assert_close(log_px - elbo, gap)


def test_elbo_loss_estimates_the_analytic_elbo(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    model = make_model(W, b, mean_offset=1.0, log_var_shift=0.5)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        loss = ELBOLoss()(model(x, n_samples=20_000, generator=gen), x)
        elbo = analytic_elbo(model, x).mean()
        log_px = exact_log_px(W, b, x).mean()
    assert -loss.total.item() == pytest.approx(elbo.item(), abs=0.02)
    assert -loss.total.item() < log_px.item() - 0.5  # the gap is far larger than the MC error
    torch.testing.assert_close(loss.kl, model.encode(x).kl().sum(-1).mean())


def test_iwae_tightens_with_k(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    model = make_model(W, b, mean_offset=1.0, log_var_shift=0.5)
    repeats = 2000
    x_rep = x[:1].expand(repeats, D)  # each row gives an independent estimate
    gen = torch.Generator().manual_seed(2)
    log_px = exact_log_px(W, b, x[:1]).item()
    bounds, errors = [], []
    with torch.no_grad():
        for k in (1, 4, 16, 64):
            out = model(x_rep, n_samples=k, generator=gen)
            log_w, _ = importance_log_weights(out, x_rep)
            per_rep = torch.logsumexp(log_w, 0) - math.log(k)
            bounds.append(per_rep.mean().item())
            errors.append(per_rep.std().item() / math.sqrt(repeats))
            torch.testing.assert_close(-IWAELoss(k)(out, x_rep).total, per_rep.mean())
    assert log_px - bounds[0] > 0.5, bounds  # a loose encoder: the ELBO is well below
    for i in range(len(bounds) - 1):
        assert bounds[i + 1] > bounds[i] + 3 * math.hypot(errors[i], errors[i + 1]), bounds
    assert bounds[-1] < log_px + 3 * errors[-1], (bounds, log_px)


def test_iwae_converges_to_log_px_for_large_k(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    model = make_model(W, b, mean_offset=0.5, log_var_shift=0.3)
    gen = torch.Generator().manual_seed(3)
    estimate = log_likelihood(model, x, k=5000, chunk_size=512, generator=gen)
    log_px = exact_log_px(W, b, x)
    torch.testing.assert_close(estimate, log_px, rtol=0, atol=0.03)
    with torch.no_grad():
        assert bool((analytic_elbo(model, x) < log_px - 0.2).all())


def test_bounds_are_exact_when_the_encoder_is_the_exact_posterior() -> None:
    gen = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(D, d, generator=gen, dtype=F64))
    W = Q * torch.tensor([1.5, 0.7], dtype=F64)  # orthogonal columns: diagonal posterior
    b = torch.randn(D, generator=gen, dtype=F64)
    x = torch.randn(5, D, generator=gen, dtype=F64)
    model = make_model(W, b)
    _, _, Sigma = posterior_of(W, b)
    torch.testing.assert_close(Sigma, torch.diag(Sigma.diagonal()))
    log_px = exact_log_px(W, b, x)
    with torch.no_grad():
        torch.testing.assert_close(analytic_elbo(model, x), log_px)
        for k in (1, 3, 50):
            estimate = log_likelihood(model, x, k=k, chunk_size=16)
            torch.testing.assert_close(estimate, log_px, rtol=1e-6, atol=1e-6)
        loss = IWAELoss(4)(model(x, n_samples=4), x)
    torch.testing.assert_close(-loss.total, log_px.mean(), rtol=1e-6, atol=1e-6)


def test_chunking_is_statistically_consistent(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    model = make_model(W, b, mean_offset=0.5, log_var_shift=0.3)
    repeats = 40
    x_rep = x[:1].expand(repeats, D)
    log_px = exact_log_px(W, b, x[:1]).item()
    means = []
    # 10 splits the rows and the samples; 333 keeps the rows and splits the samples.
    for chunk_size in (10, 333, 10**6):
        gen = torch.Generator().manual_seed(4)
        estimate = log_likelihood(model, x_rep, k=500, chunk_size=chunk_size, generator=gen)
        assert estimate.shape == (repeats,)
        error = estimate.std().item() / math.sqrt(repeats)
        assert abs(estimate.mean().item() - log_px) < 0.01 + 4 * error
        means.append(estimate.mean().item())
    assert max(means) - min(means) < 0.03


def test_log_likelihood_is_reproducible_with_a_generator(problem: tuple[Tensor, ...]) -> None:
    W, b, x = problem
    model = make_model(W, b, mean_offset=0.3)
    runs = [
        log_likelihood(
            model,
            x,
            k=300,
            chunk_size=50,
            generator=torch.Generator().manual_seed(5),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not runs[0].requires_grad


def test_log_likelihood_k5000_with_a_small_chunk_and_many_rows() -> None:
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder

    model = VAE(Encoder(6, 4, 2), Decoder(2, 4, 6))
    x = torch.rand(10, 6)
    estimate = log_likelihood(model, x, k=5000, chunk_size=64)
    assert estimate.shape == (10,) and bool(torch.isfinite(estimate).all())
    elbo = -ELBOLoss()(model(x, n_samples=200), x).total
    assert estimate.mean().item() > elbo.item()


def test_log_likelihood_slices_model_kwargs_with_the_rows() -> None:
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder

    calls: list[tuple[int, int, int]] = []

    class Labelled(VAE):
        def forward(  # type: ignore[override]
            self,
            x: Tensor,
            n_samples: int | None = None,
            generator: torch.Generator | None = None,
            label: Tensor | None = None,
        ) -> VAEOutput:
            assert label is not None and n_samples is not None
            calls.append((x.shape[0], n_samples, label.shape[0]))
            return super().forward(
                x + 0 * label.view(-1, 1), n_samples=n_samples, generator=generator
            )

    model = Labelled(Encoder(3, 4, 2), Decoder(2, 4, 3))
    log_likelihood(model, torch.rand(5, 3), k=4, chunk_size=2, label=torch.arange(5.0))
    assert all(rows == labels and rows * n <= 2 for rows, n, labels in calls), calls
    assert sum(rows * n for rows, n, _ in calls) == 5 * 4, calls


def test_importance_log_weights_shapes() -> None:
    W = torch.randn(D, d, dtype=F64)
    model = make_model(W, torch.zeros(D, dtype=F64))
    x = torch.randn(3, D, dtype=F64)
    log_w, log_px_z = importance_log_weights(model(x, n_samples=6), x, LIKELIHOOD)
    with pytest.raises(ValueError, match=r"likelihood=Bernoulli.* the model was built with Gauss"):
        importance_log_weights(model(x, n_samples=6), x, Bernoulli())
    assert log_w.shape == log_px_z.shape == (6, 3)


def test_bits_per_dim() -> None:
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    torch.testing.assert_close(
        bits_per_dim(torch.tensor([2 * math.log(2)]), 2), torch.tensor([1.0])
    )
    with pytest.raises(ValueError, match=r"dims must be a positive int \(>= 1\), got 0"):
        bits_per_dim(1.0, 0)


# --- bad input -------------------------------------------------------------------------


@pytest.fixture
def tiny() -> VAE:
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder

    return VAE(Encoder(6, 4, 2), Decoder(2, 4, 6))


@pytest.mark.parametrize("k", [0, -2])
def test_k_below_one(tiny: VAE, k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be a positive int \(>= 1\), got {k}"):
        log_likelihood(tiny, torch.rand(2, 6), k=k)


def test_bad_log_likelihood_arguments(tiny: VAE) -> None:
    x = torch.rand(2, 6)
    with pytest.raises(TypeError, match=r"k must be a positive int, got float 10\.0"):
        log_likelihood(tiny, x, k=10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int \(>= 1\), got 0"):
        log_likelihood(tiny, x, k=10, chunk_size=0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, \.\.\.\), got shape \(6,\)"):
        log_likelihood(tiny, x[0], k=10)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        log_likelihood(tiny, x + 1, k=10)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        log_likelihood(tiny, x.long(), k=10)
    gaussian = VAE(tiny.encoder, tiny.decoder, likelihood=Gaussian())
    with pytest.raises(ValueError, match="x must be finite"):
        log_likelihood(gaussian, torch.full((2, 6), math.nan), k=10)
    with pytest.raises(ValueError, match=r"log_likelihood was given likelihood=Gaussian\("):
        log_likelihood(tiny, x, k=10, likelihood=Gaussian())


def test_log_likelihood_encodes_each_example_once_when_k_fits_a_chunk() -> None:
    """All k samples of an example are decoded together, so the encoder runs once for it."""
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder

    model = VAE(Encoder(6, 4, 2), Decoder(2, 4, 6))
    encoded: list[int] = []
    decoded: list[int] = []
    model.encoder.register_forward_hook(lambda m, args, out: encoded.append(args[0].shape[0]))
    decode = model._decode

    def counting_decode(z: Tensor, e: Tensor | None) -> Tensor:
        decoded.append(z.shape[:-1].numel())
        return decode(z, e)

    model._decode = counting_decode  # type: ignore[method-assign]
    log_likelihood(model, torch.rand(10, 6), k=30, chunk_size=64)
    assert sum(encoded) == 10, encoded  # not once per sample
    assert max(decoded) <= 64 and sum(decoded) == 10 * 30, decoded
    encoded.clear()
    decoded.clear()
    log_likelihood(model, torch.rand(3, 6), k=100, chunk_size=40)  # k > chunk_size
    assert sum(encoded) == 3 * 3 and max(decoded) <= 40, encoded
