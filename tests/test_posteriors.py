"""Posteriors: the diagonal Gaussian and the flow posterior (inverts, normalized, consistent)."""

from __future__ import annotations

import builtins
import math
from typing import Any

import pytest
import torch
from torch import nn

from torchvae.gaussian import GaussianParams
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.posteriors import DiagonalGaussian, FlowPosterior, Posterior

zuko = pytest.importorskip("zuko")

F64 = torch.float64


def flow(kind: str = "maf", seed: int = 0, scale: float = 0.15) -> FlowPosterior:
    """A bound flow posterior over 2 dimensions, moved away from its identity start."""
    torch.manual_seed(seed)
    q = FlowPosterior(transforms=2, hidden_features=(8,), flow=kind, latent_dim=2).double()  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in q.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return q


def params(batch: int = 3) -> GaussianParams:
    gen = torch.Generator().manual_seed(11)
    return GaussianParams(
        torch.randn(batch, 2, generator=gen, dtype=F64),
        0.5 * torch.randn(batch, 2, generator=gen, dtype=F64),
    )


@pytest.mark.parametrize("kind", ["maf", "realnvp"])
def test_the_density_of_a_sample_is_its_log_prob_so_the_flow_inverts(kind: str) -> None:
    q, p = flow(kind), params()
    z, log_q = q.rsample_and_log_prob(p, 5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 3, 2) and log_q.shape == (5, 3)
    torch.testing.assert_close(q.log_prob(z, p), log_q)
    torch.testing.assert_close(q(p).log_prob(z), log_q)
    base = q._transform(p).inv(z)  # back to the Gaussian's samples
    torch.testing.assert_close(q._transform(p)(base), z)


@pytest.mark.parametrize("kind", ["maf", "realnvp"])
def test_density_integrates_to_one_and_samples_follow_it(kind: str) -> None:
    q, p = flow(kind), params(1)
    side = torch.linspace(-25, 25, 1001, dtype=F64)
    zz = torch.cartesian_prod(side, side)
    cell = float(side[1] - side[0]) ** 2
    with torch.no_grad():
        density = q.log_prob(zz, p).exp()
        z, _ = q.rsample_and_log_prob(p, 20_000, torch.Generator().manual_seed(2))
    assert (density.sum() * cell).item() == pytest.approx(1.0, abs=2e-3)
    z = z[:, 0]
    center = q.location(p)[0]
    for low, high in [(-1.0, 0.0), (0.0, 1.0), (-0.5, 0.7)]:
        lo, hi = center + low, center + high
        frac = ((z >= lo) & (z <= hi)).all(-1).double().mean().item()
        expected = (density[((zz >= lo) & (zz <= hi)).all(-1)].sum() * cell).item()
        se = math.sqrt(max(expected * (1 - expected), 1e-4) / z.shape[0])
        assert abs(frac - expected) < 5 * se + 5e-3, (low, high, frac, expected)


def test_a_new_flow_starts_as_its_gaussian_base() -> None:
    q = FlowPosterior(transforms=2, hidden_features=(8,), latent_dim=2).double()
    p = params()
    z = torch.randn(4, 3, 2, dtype=F64)
    torch.testing.assert_close(q.log_prob(z, p), p.log_prob(z))
    torch.testing.assert_close(q.location(p), p.mean)


def test_diagonal_gaussian_is_the_encoders_gaussian() -> None:
    q, p = DiagonalGaussian(), params()
    z, log_q = q.rsample_and_log_prob(p, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q, p.distribution().log_prob(z))
    torch.testing.assert_close(q.location(p), p.mean)
    eps = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(z, p.mean + p.std * eps)


def test_flow_posterior_in_a_model_trains_and_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(6, 8, 2), Decoder(2, 8, 6), posterior=FlowPosterior(hidden_features=(8,)))
    x = torch.rand(5, 6)
    out = model(x)
    assert not out.kl_exact and out.kl_per_dim is None and out.log_pz is not None
    (-out.log_px_z + out.kl).mean().backward()  # type: ignore[operator]
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.reconstruct(x).shape == x.shape and model.sample(3).shape == (3, 6)


def test_missing_zuko_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_zuko(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "zuko" or name.startswith("zuko."):
            raise ImportError("No module named 'zuko'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zuko)
    from torchvae.priors import FlowPrior

    for build in (FlowPosterior, FlowPrior):
        with pytest.raises(ImportError, match=r"pip install 'torchvae\[flows\]'"):
            build()


def test_bad_posteriors_are_named() -> None:
    with pytest.raises(ValueError, match="flow must be 'maf' or 'realnvp', got 'iaf'"):
        FlowPosterior(flow="iaf")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"built for latent_dim=3 but the encoder gives latent_dim=2"
    ):
        VAE(Encoder(6, 8, 2), Decoder(2, 8, 6), posterior=FlowPosterior(latent_dim=3))
    with pytest.raises(TypeError, match=r"posterior must be a torchvae Posterior .* got Linear"):
        VAE(Encoder(6, 8, 2), Decoder(2, 8, 6), posterior=nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transforms must be a positive int"):
        FlowPosterior(transforms=0)
    assert issubclass(FlowPosterior, Posterior)
