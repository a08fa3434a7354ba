"""Priors: normalized densities, samples that follow them, the KL they give, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from torchvae.gaussian import GaussianParams, gaussian_kl
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.posteriors import DiagonalGaussian
from torchvae.priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior
from torchvae.priors._mixture import diagonal_log_prob

zuko = pytest.importorskip("zuko")

F64 = torch.float64
PRIORS: dict[str, Callable[[], Prior]] = {
    "standard": StandardNormal,
    "mixture": lambda: MixturePrior(3),
    "vamp": lambda: VampPrior(4),
    "flow-maf": lambda: FlowPrior(transforms=2, hidden_features=(8,)),
    "flow-realnvp": lambda: FlowPrior(transforms=2, hidden_features=(8,), flow="realnvp"),
}


def _perturb(module: nn.Module, scale: float = 0.3) -> None:
    """Move every parameter off its initial value, so no test passes at an identity flow."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def model_with(prior: Prior, num_classes: int | None = None, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    width = num_classes or 0
    model = VAE(
        Encoder(4 + width, 8, 2),
        Decoder(2 + width, 8, 4),
        prior=prior,
        num_classes=num_classes,
    ).double()
    _perturb(model.prior, 0.15)
    return model


def grid(half_width: float = 20.0, n: int = 801) -> tuple[Tensor, float]:
    side = torch.linspace(-half_width, half_width, n, dtype=F64)
    zz = torch.cartesian_prod(side, side)
    return zz, float(side[1] - side[0]) ** 2


@pytest.mark.parametrize("name", sorted(PRIORS))
@pytest.mark.parametrize("conditional", [False, True])
def test_density_integrates_to_one(name: str, conditional: bool) -> None:
    model = model_with(PRIORS[name](), num_classes=3 if conditional else None)
    zz, cell = grid()
    y = torch.full((zz.shape[0],), 2) if conditional else None
    with torch.no_grad():
        mass = (model.prior.log_prob(zz, y).exp().sum() * cell).item()
    assert mass == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_samples_follow_the_density(name: str) -> None:
    """The fraction of draws in a few boxes matches the density's integral over them."""
    model = model_with(PRIORS[name]())
    n = 20_000
    with torch.no_grad():
        z = model.prior.sample(n, generator=torch.Generator().manual_seed(1))
        zz, cell = grid(8.0, 321)
        density = model.prior.log_prob(zz).exp()
    assert z.shape == (n, 2) and z.dtype == F64
    for low, high in [(-8.0, 0.0), (0.0, 8.0), (-0.5, 0.5), (-1.5, 0.2)]:
        inside_z = ((z >= low) & (z <= high)).all(-1).double().mean().item()
        inside_grid = ((zz >= low) & (zz <= high)).all(-1)
        expected = (density[inside_grid].sum() * cell).item()
        se = math.sqrt(max(expected * (1 - expected), 1e-4) / n)
        assert abs(inside_z - expected) < 5 * se + 4e-3, (low, high, inside_z, expected)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_distribution_object_agrees_with_log_prob_and_samples_reproduce(name: str) -> None:
    model = model_with(PRIORS[name]())
    z = torch.randn(5, 2, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(model.prior().log_prob(z), model.prior.log_prob(z))
        a = model.prior.sample(4, generator=torch.Generator().manual_seed(3))
        b = model.prior.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@given(
    st.floats(-8.0, 8.0), st.floats(-6.0, 1.0), st.integers(0, 2**16), st.sampled_from([1, 3, 20])
)
def test_mixture_component_densities_match_torch_even_far_from_a_narrow_component(
    offset: float, log_scale: float, seed: int, d: int
) -> None:
    """The GEMM expansion of the quadratic form must not lose digits to cancellation."""
    gen = torch.Generator().manual_seed(seed)
    means = offset + torch.randn(5, d, generator=gen)
    log_scales = log_scale + 0.5 * torch.randn(5, d, generator=gen)
    z = offset + 3.0 * torch.randn(2, 7, d, generator=gen)
    got = diagonal_log_prob(z, means, log_scales)
    want = Normal(means.to(F64), log_scales.to(F64).exp()).log_prob(z.to(F64)[..., None, :])
    assert got.shape == (2, 7, 5) and got.dtype == torch.float32
    torch.testing.assert_close(got, want.sum(-1).float(), rtol=3e-7, atol=1e-4)


def test_mixture_component_density_near_a_narrow_far_component_is_exact() -> None:
    """z^2 / s^2 is ~1e8 here while log N is ~+60: float32 cancellation would miss by tens."""
    gen = torch.Generator().manual_seed(0)
    means = torch.full((2, 20), 50.0)
    log_scales = torch.full((2, 20), math.log(0.01))
    z = means[:1] + 0.01 * torch.randn(4, 20, generator=gen)
    got = diagonal_log_prob(z, means, log_scales)
    want = Normal(means.to(F64), log_scales.to(F64).exp()).log_prob(z.to(F64)[:, None, :])
    torch.testing.assert_close(got.to(F64), want.sum(-1), rtol=0.0, atol=1e-3)


def test_standard_normal_temperature_and_closed_form_kl() -> None:
    prior = model_with(StandardNormal()).prior
    gen = torch.Generator
    z = prior.sample(3, temperature=2.0, generator=gen().manual_seed(5))
    torch.testing.assert_close(z, 2.0 * torch.randn(3, 2, generator=gen().manual_seed(5)).double())
    assert torch.equal(prior.sample(3, temperature=0.0), torch.zeros(3, 2, dtype=F64))
    q = GaussianParams(torch.randn(4, 2), torch.randn(4, 2))
    closed = prior.kl_closed_form(DiagonalGaussian(), q)
    assert closed is not None
    torch.testing.assert_close(closed, gaussian_kl(q.mean, q.log_var))


@given(mean=st.floats(-2, 2), log_var=st.floats(-2, 1.5))
def test_monte_carlo_kl_agrees_with_the_closed_form(mean: float, log_var: float) -> None:
    """``log q(z) - log p(z)`` on samples of q estimates the exact KL, within its error."""
    q = GaussianParams(torch.full((1, 2), mean, dtype=F64), torch.full((1, 2), log_var, dtype=F64))
    z, log_q = DiagonalGaussian().rsample_and_log_prob(q, 40_000, torch.Generator().manual_seed(0))
    samples = (log_q - StandardNormal(latent_dim=2).double().log_prob(z)).squeeze(-1)
    exact = gaussian_kl(q.mean, q.log_var).sum().item()
    error = samples.std().item() / math.sqrt(samples.numel())
    assert abs(samples.mean().item() - exact) < 4 * error + 1e-9


class ShiftedNormal(Prior):
    """A prior of one's own: N(m, s^2), whose KL torch.distributions knows in closed form."""

    def forward(self, y: Tensor | None = None) -> Independent[Normal]:
        loc = self._like.new_full((self.dim,), 0.5)
        return Independent(Normal(loc, 2.0 * torch.ones_like(loc)), 1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, dtype=self._like.dtype)
        return 0.5 + 2.0 * temperature * eps


def test_a_registered_pair_gets_the_closed_form_and_it_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(4, 8, 2), Decoder(2, 8, 4), prior=ShiftedNormal()).double()
    x = torch.rand(3, 4, dtype=F64)
    out = model(x, n_samples=50_000, generator=torch.Generator().manual_seed(2))
    assert out.kl_exact and out.kl_per_dim is None
    assert out.log_qz is not None and out.log_pz is not None
    samples = out.log_qz - out.log_pz
    error = samples.std(0) / math.sqrt(samples.shape[0])
    assert bool(((samples.mean(0) - out.kl).abs() < 4 * error).all())


def test_other_priors_use_monte_carlo_on_the_model_samples() -> None:
    for name in ("mixture", "vamp", "flow-maf"):
        model = model_with(PRIORS[name]())
        x = torch.rand(3, 4, dtype=F64)
        out = model(x, n_samples=2)
        assert not out.kl_exact and out.kl_per_dim is None
        assert out.log_qz is not None and out.log_pz is not None
        torch.testing.assert_close(out.kl, (out.log_qz - out.log_pz).mean(0))
        torch.testing.assert_close(out.log_pz, model.prior.log_prob(out.z))


def test_conditional_priors_depend_on_the_label() -> None:
    for name in ("mixture", "vamp", "flow-maf"):
        model = model_with(PRIORS[name](), num_classes=3)
        z = torch.randn(6, 2, dtype=F64)
        with torch.no_grad():
            a = model.prior.log_prob(z, torch.zeros(6, dtype=torch.long))
            b = model.prior.log_prob(z, torch.full((6,), 2))
        assert not torch.allclose(a, b), name
    unconditional = model_with(StandardNormal(), num_classes=3).prior
    z = torch.randn(6, 2, dtype=F64)
    assert torch.equal(unconditional.log_prob(z, torch.zeros(6, dtype=torch.long)),
                       unconditional.log_prob(z))  # fmt: skip


def test_vamp_prior_is_the_mixture_of_the_posteriors_at_its_pseudo_inputs() -> None:
    model = model_with(VampPrior(4))
    prior = model.prior
    assert isinstance(prior, VampPrior) and prior.pseudo_inputs is not None
    z = torch.randn(5, 2, dtype=F64)
    with torch.no_grad():
        u = prior.pseudo_inputs.clamp(0, 1)
        q = model.encode(u).distribution()
        expected = torch.logsumexp(q.log_prob(z[:, None, :]), dim=1) - math.log(4)
        torch.testing.assert_close(prior.log_prob(z), expected)
    # the pseudo-inputs are learned through the prior's density
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_inputs.grad is not None


def test_bad_priors_are_named() -> None:
    with pytest.raises(ValueError, match=r"latent_dim=5\) differs from the encoder's latent_dim=2"):
        VAE(Encoder(4, 8, 2), Decoder(2, 8, 4), prior=MixturePrior(3, latent_dim=5))
    prior = MixturePrior(3)
    VAE(Encoder(4, 8, 2), Decoder(2, 8, 4), prior=prior)
    with pytest.raises(ValueError, match="already belongs to a model"):
        VAE(Encoder(4, 8, 2), Decoder(2, 8, 4), prior=prior)
    with pytest.raises(TypeError, match=r"prior must be a torchvae Prior .* got Normal"):
        VAE(Encoder(4, 8, 2), Decoder(2, 8, 4), prior=Normal(0, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one pseudo-input per class"):
        VAE(Encoder(14, 8, 2), Decoder(12, 8, 4), prior=VampPrior(5), num_classes=10)
    with pytest.raises(ValueError, match="n_components must be a positive int"):
        MixturePrior(0)
    with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
        model_with(StandardNormal()).sample(2, temperature=-1.0)


def test_vamp_prior_needs_the_input_shape() -> None:
    class Bare(nn.Module):
        latent_dim = 2

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 4)

        def forward(self, x: Tensor) -> GaussianParams:
            mean, log_var = self.net(x).chunk(2, -1)
            return GaussianParams(mean, log_var)

    with pytest.raises(ValueError, match="VampPrior needs the shape of the encoder's input"):
        VAE(Bare(), Decoder(2, 8, 4), prior=VampPrior(3))
