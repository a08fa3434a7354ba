"""Ex-post samplers: the Gaussian mixture recovers a known mixture, is reproducible, and
drives ``VAE.sample(n, sampler=...)``; saved with the model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from torchvae.io.serialization import load_model, save_model
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.samplers import GaussianMixtureSampler, aggregate_posterior, fit_gmm_sampler

WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
COVS = torch.tensor(
    [[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 1.5]], [[0.7, 0.0], [0.0, 0.3]]],
    dtype=torch.float64,
)


def mixture(n: int, covs: torch.Tensor = COVS, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    component = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    factors = torch.linalg.cholesky(covs)
    return MEANS[component] + (factors[component] @ eps.unsqueeze(-1)).squeeze(-1)


def matched(gmm: GaussianMixtureSampler) -> list[int]:
    """The fitted component nearest each true mean."""
    return torch.cdist(MEANS, gmm.means.double()).argmin(1).tolist()


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_recovers_a_known_mixture(covariance: str) -> None:
    covs = COVS if covariance == "full" else torch.diag_embed(COVS.diagonal(dim1=1, dim2=2))
    z = mixture(6000, covs).float()
    gmm = GaussianMixtureSampler(3, 2, covariance)  # type: ignore[arg-type]
    gmm.fit(z, generator=torch.Generator().manual_seed(0))
    order = matched(gmm)
    assert sorted(order) == [0, 1, 2]
    assert torch.allclose(gmm.weights[order].double(), WEIGHTS, atol=0.025)
    assert torch.allclose(gmm.means[order].double(), MEANS, atol=0.1)
    assert torch.allclose(gmm.covariances[order].double(), covs, atol=0.12)
    # the fitted density scores the data about as well as the true one
    true = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(WEIGHTS),
        torch.distributions.MultivariateNormal(MEANS, covs),
    )
    assert float(gmm.log_prob(z).mean()) == pytest.approx(
        float(true.log_prob(z.double()).mean()), abs=0.02
    )
    assert gmm.iterations is not None and gmm.log_likelihood is not None


def test_log_prob_is_a_normalized_density() -> None:
    gmm = GaussianMixtureSampler(3, 2).fit(mixture(600), generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-12, 12, 401)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([x.flatten(), y.flatten()], 1)
    mass = gmm.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=2e-3)


def test_samples_follow_the_fitted_mixture() -> None:
    g = torch.Generator().manual_seed(0)
    gmm = GaussianMixtureSampler(3, 2).fit(mixture(3000), generator=g)
    drawn = gmm.sample(20000, generator=torch.Generator().manual_seed(1)).double()
    nearest = torch.cdist(drawn, MEANS).argmin(1)
    freq = torch.bincount(nearest, minlength=3).double() / len(drawn)
    assert torch.allclose(freq, WEIGHTS, atol=0.03)
    cold = gmm.sample(100, temperature=0.0)
    assert bool((torch.cdist(cold, gmm.means).min(1).values < 1e-5).all())


def test_fit_and_sampling_are_reproducible_with_a_generator() -> None:
    z = mixture(1000).float()
    a = GaussianMixtureSampler(4, 2).fit(z, generator=torch.Generator().manual_seed(3))
    b = GaussianMixtureSampler(4, 2).fit(z, generator=torch.Generator().manual_seed(3))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    s1 = a.sample(7, generator=torch.Generator().manual_seed(5))
    s2 = b.sample(7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)


def test_vae_samples_with_the_sampler(tmp_path: Path) -> None:
    model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
    data = torch.rand(200, 16, generator=torch.Generator().manual_seed(0))
    gmm = fit_gmm_sampler(model, data, 4, generator=torch.Generator().manual_seed(0))
    assert gmm.dim == 3 and bool(gmm.fitted)
    out = model.sample(6, generator=torch.Generator().manual_seed(2), sampler=gmm)
    assert out.shape == (6, 16)
    again = model.sample(6, generator=torch.Generator().manual_seed(2), sampler=gmm)
    assert torch.equal(out, again)
    z = gmm.sample(6, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, model.decode(z))  # z comes from the sampler, not the prior
    model.sampler = gmm
    save_model(model, tmp_path / "vae.pt")
    loaded = load_model(tmp_path / "vae.pt")
    assert isinstance(loaded, VAE) and isinstance(loaded.sampler, GaussianMixtureSampler)
    same = loaded.sample(6, generator=torch.Generator().manual_seed(2), sampler=loaded.sampler)
    assert torch.equal(out, same)
    del model.sampler
    save_model(model, tmp_path / "plain.pt")
    assert not hasattr(load_model(tmp_path / "plain.pt"), "sampler")


def test_conditional_vae_samples_with_the_sampler(tmp_path: Path) -> None:
    model = ConditionalVAE.mlp(16, 8, 3, num_classes=4)
    x = torch.rand(100, 16)
    y = torch.randint(4, (100,))
    gmm = fit_gmm_sampler(
        model, torch.utils.data.TensorDataset(x, y), 2, covariance="diag", codes="sample"
    )
    assert model.sample(5, 1, sampler=gmm).shape == (5, 16)
    model.sampler = gmm
    save_model(model, tmp_path / "cvae.pt")
    loaded = load_model(tmp_path / "cvae.pt")
    assert isinstance(loaded, ConditionalVAE) and loaded.sampler.covariance == "diag"


def test_aggregate_posterior_is_the_posterior_means() -> None:
    model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
    x = torch.rand(30, 16)
    assert torch.equal(aggregate_posterior(model, x, batch_size=7), model.encode(x).mean)
    drawn = aggregate_posterior(model, x, "sample", generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (30, 3) and not torch.equal(drawn, model.encode(x).mean)


def test_bad_use_is_named() -> None:
    with pytest.raises(ValueError, match="not been fitted"):
        GaussianMixtureSampler(2, 2).sample(3)
    with pytest.raises(ValueError, match="fewer than the 5 components"):
        GaussianMixtureSampler(5, 2).fit(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"\(n, dim\)"):
        GaussianMixtureSampler(2, 2).fit(torch.randn(10, 3))
    with pytest.raises(ValueError, match="covariance"):
        GaussianMixtureSampler(2, 2, "spherical")  # type: ignore[arg-type]
    model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
    wrong = GaussianMixtureSampler(2, 2).fit(torch.randn(10, 2))
    with pytest.raises(ValueError, match="latent_dim"):
        model.sample(3, sampler=wrong)
    with pytest.raises(TypeError, match="sample"):
        model.sample(3, sampler=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conditional"):
        fit_gmm_sampler(ConditionalVAE.mlp(16, 8, 3, num_classes=2), torch.rand(5, 16), 2)
    assert math.isfinite(float(wrong.log_prob(torch.zeros(1, 2))))
