"""FactorVAE: the shuffle, the discriminator's loss, and the two-optimizer update by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.factorvae import Discriminator, FactorVAELoss, permute_dims
from torchvae.objectives.losses import LossOutput

D = 12


def model(latent: int = 3) -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(D, 8, latent), Decoder(latent, 8, D))


def test_permute_dims_shuffles_each_column_on_its_own() -> None:
    z = torch.arange(40.0).reshape(10, 4)
    g = torch.Generator().manual_seed(0)
    p = permute_dims(z, g)
    assert torch.equal(p.sort(dim=0).values, z)  # each column keeps its values
    assert not torch.equal(p, z)
    assert torch.equal(permute_dims(z, torch.Generator().manual_seed(0)), p)
    orders = [p[:, k].argsort() for k in range(4)]
    assert any(not torch.equal(orders[0], o) for o in orders[1:])  # not one shared shuffle
    coupled = torch.randn(4000, 1).repeat(1, 2)
    shuffled = permute_dims(coupled)
    assert torch.corrcoef(shuffled.T)[0, 1].abs() < 0.1 < torch.corrcoef(coupled.T)[0, 1]


def test_each_loss_sends_gradient_only_to_its_own_parameters() -> None:
    vae, loss = model(), FactorVAELoss(3, gamma=5.0, hidden_features=(16, 16))
    x = torch.rand(16, D)
    out = loss(vae(x), x)
    assert out.aux is not None
    out.total.backward(retain_graph=True)
    assert all(p.grad is None for p in loss.discriminator.parameters())
    assert all(p.grad is not None for p in vae.parameters())
    vae.zero_grad(set_to_none=True)
    out.aux["discriminator"].backward()
    assert all(p.grad is not None for p in loss.discriminator.parameters())
    assert all(p.grad is None for p in vae.parameters())


def test_total_is_the_elbo_plus_gamma_times_the_estimate() -> None:
    vae, loss = model(), FactorVAELoss(3, gamma=4.0, hidden_features=(16,))
    x = torch.rand(16, D)
    out = vae(x)
    got = loss(out, x)
    tc = loss.discriminator(out.z).mean()
    elbo = -out.log_px_z.mean() + out.kl.mean()  # type: ignore[union-attr]
    torch.testing.assert_close(got.total, elbo + 4.0 * tc)
    assert got.terms is not None
    torch.testing.assert_close(got.terms["tc"], tc.detach())


def _step(
    vae: nn.Module,
    loss: FactorVAELoss,
    main: torch.optim.Optimizer,
    aux: torch.optim.Optimizer,
    x: Tensor,
) -> LossOutput:
    """One training step as the Trainer will make it (see the objectives' notes in wave 2)."""
    out = loss(vae(x), x)
    main.zero_grad(set_to_none=True)
    out.total.backward()
    main.step()
    assert out.aux is not None
    aux.zero_grad(set_to_none=True)
    out.aux["discriminator"].backward()
    aux.step()
    return out


def test_two_step_update_by_hand_changes_each_part_by_its_own_loss() -> None:
    vae, loss = model(), FactorVAELoss(3, gamma=10.0, hidden_features=(16, 16))
    main = torch.optim.Adam(vae.parameters(), lr=1e-3)
    aux = torch.optim.Adam(loss.aux_parameters()["discriminator"], lr=1e-4, betas=(0.5, 0.9))
    x = torch.rand(32, D)
    before_vae = [p.detach().clone() for p in vae.parameters()]
    before_d = [p.detach().clone() for p in loss.discriminator.parameters()]

    # What each update should be, from gradients computed apart.
    torch.manual_seed(7)
    out = loss(vae(x), x)
    assert out.aux is not None
    g_vae = torch.autograd.grad(out.total, list(vae.parameters()), retain_graph=True)
    g_d = torch.autograd.grad(out.aux["discriminator"], list(loss.discriminator.parameters()))
    ref_main = torch.optim.Adam([p.detach().clone().requires_grad_() for p in before_vae], 1e-3)
    ref_aux = torch.optim.Adam(
        [p.detach().clone().requires_grad_() for p in before_d], lr=1e-4, betas=(0.5, 0.9)
    )
    for opt, grads in ((ref_main, g_vae), (ref_aux, g_d)):
        for p, g in zip(opt.param_groups[0]["params"], grads, strict=True):
            p.grad = g.clone()
        opt.step()

    torch.manual_seed(7)
    _step(vae, loss, main, aux, x)
    for p, want in zip(vae.parameters(), ref_main.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(p, want)
    for p, want in zip(
        loss.discriminator.parameters(), ref_aux.param_groups[0]["params"], strict=True
    ):
        torch.testing.assert_close(p, want)
    assert any(not torch.equal(a, b) for a, b in zip(vae.parameters(), before_vae, strict=True))


def test_the_discriminator_learns_to_see_the_total_correlation() -> None:
    """Codes with two coupled dimensions: trained by its own loss, the discriminator tells
    them from their shuffle, and its estimate of the TC approaches the true value."""
    torch.manual_seed(0)
    loss = FactorVAELoss(2, gamma=1.0, hidden_features=(32, 32))
    opt = torch.optim.Adam(loss.aux_parameters()["discriminator"], lr=3e-3)
    x = torch.full((256, D), 0.5)
    for _ in range(300):
        a = torch.randn(256, 1)
        z = torch.cat([a, a + 0.1 * torch.randn(256, 1)], dim=1)
        out = loss(VAEOutput(torch.zeros(256, D), z, torch.zeros_like(z), z), x)
        assert out.aux is not None
        opt.zero_grad(set_to_none=True)
        out.aux["discriminator"].backward()
        opt.step()
    assert out.terms is not None
    assert out.terms["discriminator_accuracy"] > 0.8
    # the true TC of two Gaussians of correlation rho: -log(1 - rho^2) / 2 = 2.31 nats
    assert 1.5 < out.terms["tc"] < 3.0


def test_a_custom_discriminator_and_bad_input() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.Flatten(0))
    loss = FactorVAELoss(3, discriminator=net)
    assert loss.discriminator is net
    assert loss.aux_parameters()["discriminator"] == list(net.parameters())
    vae, x = model(), torch.rand(8, D)
    assert torch.isfinite(loss(vae(x), x).total)
    with pytest.raises(ValueError, match="one logit per example"):
        FactorVAELoss(3, discriminator=nn.Linear(3, 2))(vae(x), x)
    with pytest.raises(ValueError, match="built for latent_dim=4"):
        FactorVAELoss(4, hidden_features=(4,))(vae(x), x)
    with pytest.raises(ValueError, match="at least 2 examples"):
        FactorVAELoss(3, hidden_features=(4,))(vae(x[:1]), x[:1])
    with pytest.raises(TypeError, match=r"discriminator must be a torch\.nn\.Module"):
        FactorVAELoss(3, discriminator=lambda z: z)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        FactorVAELoss(3, gamma=-1.0)
    with pytest.raises(ValueError, match="z must have shape"):
        permute_dims(torch.zeros(3))
    assert Discriminator(3, (5,))(torch.zeros(2, 3)).shape == (2,)


def test_trainer_trains_and_resumes_factorvae_exactly(tmp_path: Path) -> None:
    from torchvae.callbacks import ModelCheckpoint
    from torchvae.training.trainer import Trainer

    data = torch.rand(48, D)

    def trainer(folder: Path) -> Trainer:
        vae = model()
        loss = FactorVAELoss(3, hidden_features=(8,))
        opt = torch.optim.Adam(loss.aux_parameters()["discriminator"], 1e-4, betas=(0.5, 0.9))
        return Trainer(
            vae,
            loss,
            optimizers={"discriminator": opt},
            callbacks=[ModelCheckpoint(folder)],
            device="cpu",
            seed=1,
            batch_size=16,
        )

    full = trainer(tmp_path / "full")
    full.fit(data, epochs=3)
    assert "tc" in full.metrics
    part = trainer(tmp_path / "part")
    part.fit(data, epochs=2)
    resumed = trainer(tmp_path / "part")
    resumed.fit(data, epochs=3, resume="last")
    for a, b in ((full.model, resumed.model), (full.loss, resumed.loss)):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q), name
