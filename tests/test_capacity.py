"""β-VAE with capacity annealing: the target's ramp, its step counter and the loss."""

from __future__ import annotations

import math

import pytest
import torch

from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.capacity import CapacityLoss
from torchvae.priors import MixturePrior

D = 12


def model() -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(D, 8, 3), Decoder(3, 8, D))


def test_target_rises_linearly_then_stays() -> None:
    loss = CapacityLoss(c_min=1.0, c_max=5.0, steps=4)
    assert [loss.capacity_at(t) for t in (0, 1, 2, 4, 100)] == [1.0, 2.0, 3.0, 5.0, 5.0]
    vae, x = model(), torch.rand(8, D)
    used = []
    for _ in range(6):
        out = loss(vae(x), x)
        assert out.terms is not None
        used.append(float(out.terms["capacity"]))
    assert used == [1.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    assert int(loss.step) == 6


def test_evaluation_does_not_advance_the_step() -> None:
    loss, vae, x = CapacityLoss(c_max=10.0, steps=10), model(), torch.rand(8, D)
    loss(vae(x), x)
    with torch.no_grad():
        for _ in range(3):
            out = loss(vae(x), x)
    assert int(loss.step) == 1 and out.terms is not None
    assert math.isclose(float(out.terms["capacity"]), 1.0, rel_tol=1e-6)


def test_total_is_reconstruction_plus_gamma_times_the_distance_to_the_target() -> None:
    loss, vae, x = CapacityLoss(gamma=7.0, c_min=3.0, c_max=3.0, steps=1), model(), torch.rand(8, D)
    out = vae(x)
    got = loss(out, x)
    recon, kl = -out.log_px_z.mean(), out.kl.mean()  # type: ignore[union-attr]
    torch.testing.assert_close(got.total, recon + 7.0 * (kl - 3.0).abs())
    torch.testing.assert_close(got.kl, kl)


@pytest.mark.parametrize("target", [0.0, 50.0], ids=["above", "below"])
def test_the_gradient_moves_the_kl_towards_the_target(target: float) -> None:
    """gamma |KL - C|: with KL > C the gradient on the means is gamma dKL/dmean (push the
    KL down), with KL < C its negative (push it up)."""
    b = 4
    mean = torch.randn(b, 3, dtype=torch.float64, requires_grad=True)
    log_var = torch.zeros(b, 3, dtype=torch.float64)
    out = VAEOutput(torch.zeros(b, D, dtype=torch.float64), mean, log_var, mean.detach())
    x = torch.full((b, D), 0.5, dtype=torch.float64)
    loss = CapacityLoss(gamma=3.0, c_min=target, c_max=target, steps=1)(out, x)
    loss.total.backward()
    sign = 1.0 if float(loss.kl.detach()) > target else -1.0
    torch.testing.assert_close(mean.grad, sign * 3.0 * mean.detach() / b)


def test_the_step_is_in_the_state_dict() -> None:
    loss, vae, x = CapacityLoss(steps=10), model(), torch.rand(8, D)
    for _ in range(3):
        loss(vae(x), x)
    state = loss.state_dict()
    assert set(state) == {"step"} and int(state["step"]) == 3
    fresh = CapacityLoss(steps=10)
    fresh.load_state_dict(state)
    assert int(fresh.step) == 3 and fresh.capacity == loss.capacity
    fresh.step.fill_(9)
    assert fresh.capacity == pytest.approx(22.5)


def test_works_with_a_monte_carlo_kl() -> None:
    vae = VAE(Encoder(D, 8, 3), Decoder(3, 8, D), prior=MixturePrior(3))
    x = torch.rand(8, D)
    out = CapacityLoss()(vae(x), x)
    assert not out.kl_exact and torch.isfinite(out.total)


def test_bad_arguments() -> None:
    for kwargs in ({"gamma": -1.0}, {"c_min": math.inf}, {"c_max": -2.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            CapacityLoss(**kwargs)
    with pytest.raises(ValueError, match="steps"):
        CapacityLoss(steps=0)
    with pytest.raises(TypeError, match="gamma must be a float"):
        CapacityLoss(gamma="1")  # type: ignore[arg-type]
    vae, x = model(), torch.rand(8, D)
    with pytest.raises(ValueError, match="one latent sample per example"):
        CapacityLoss()(vae(x, n_samples=3), x)
