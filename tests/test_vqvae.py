"""The VQ-VAE: shapes, gradients, its loss, training with the unchanged Trainer, exact
resume with EMA and restarts, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchvae.callbacks import ModelCheckpoint
from torchvae.io.serialization import load_model, save_model
from torchvae.likelihoods import Bernoulli, Gaussian
from torchvae.models.codebook import Codebook
from torchvae.models.vqnets import VQDecoder, VQEncoder
from torchvae.models.vqvae import VQVAE, VQVAEOutput
from torchvae.objectives.vq import VQLoss
from torchvae.training.trainer import Trainer

SHAPE = (1, 8, 8)


def tiny(ema: bool = False, restart_after: int | None = None, **kw: object) -> VQVAE:
    return VQVAE(
        VQEncoder(SHAPE, (4, 6), embedding_dim=3, res_blocks=1),
        VQDecoder(SHAPE, (6, 4), embedding_dim=3, res_blocks=1),
        Codebook(8, 3, ema=ema, restart_after=restart_after),
        **kw,  # type: ignore[arg-type]
    )


DATA = torch.rand(24, *SHAPE, generator=torch.Generator().manual_seed(0))


def test_shapes() -> None:
    model = tiny()
    out = model(DATA[:5])
    assert isinstance(out, VQVAEOutput)
    assert out.logits.shape == (5, *SHAPE) and out.x_hat.shape == (5, *SHAPE)
    assert out.z_e.shape == out.z_q.shape == (5, 3, 2, 2)
    assert out.indices.shape == (5, 2, 2) and out.indices.dtype == torch.int64
    assert out.log_px_z.shape == out.commitment.shape == out.codebook_loss.shape == (5,)
    assert model(DATA[:5].flatten(1)).logits.shape == (5, 64)  # flat input works too
    assert model.reconstruct(DATA[:5]).shape == (5, *SHAPE)
    assert model.encode_indices(DATA[:5]).shape == (5, 2, 2)
    assert model.decode(out.indices).shape == (5, *SHAPE)


def test_log_px_z_is_the_likelihood_of_the_decoded_codes() -> None:
    model = tiny(likelihood=Gaussian(scale=0.5))
    out = model(DATA[:4])
    logits = model.decode_logits(out.indices)
    assert torch.allclose(out.log_px_z, Gaussian(scale=0.5).log_prob(logits, DATA[:4]), atol=1e-4)


@pytest.mark.parametrize("ema", [False, True], ids=["gradient", "ema"])
def test_gradients_reach_every_parameter(ema: bool) -> None:
    model = tiny(ema=ema)
    losses = VQLoss()(model(DATA), DATA)
    losses.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"
    assert ("codebook.embedding" in dict(model.named_parameters())) is not ema


def test_the_encoder_gets_the_decoders_gradient_unchanged() -> None:
    """Straight-through: d recon / d z_e equals d recon / d z_q."""
    model = tiny()
    seen: dict[str, torch.Tensor] = {}
    out = model(DATA[:6])
    out.z_e.register_hook(lambda g: seen.__setitem__("z_e", g))
    out.z_q.register_hook(lambda g: seen.__setitem__("z_q", g))
    (-out.log_px_z.sum()).backward()
    assert torch.equal(seen["z_e"], seen["z_q"])


def test_loss_parts_and_reduction() -> None:
    model = tiny()
    out = model(DATA)
    summed, mean = VQLoss(beta=0.5)(out, DATA), VQLoss(beta=0.5, reduction="mean")(out, DATA)
    latent = 3 * 2 * 2
    assert torch.allclose(summed.reconstruction, -out.log_px_z.mean())
    assert torch.allclose(summed.kl, out.codebook_loss.mean() + 0.5 * out.commitment.mean())
    assert torch.allclose(summed.total, summed.reconstruction + summed.kl)
    assert torch.allclose(mean.kl * latent, summed.kl)
    assert summed.terms is not None
    assert float(summed.terms["kl_uniform"]) == pytest.approx(4 * torch.log(torch.tensor(8.0)))
    assert 1 <= float(summed.terms["perplexity"]) <= 8
    ema = tiny(ema=True)
    assert float(VQLoss()(ema(DATA), DATA).terms["codebook"]) == 0.0  # type: ignore[index]


def test_trains_with_the_unchanged_trainer() -> None:
    model = tiny(ema=True, restart_after=3, likelihood=Bernoulli())
    trainer = Trainer(model, VQLoss(), device="cpu", seed=0, batch_size=8)
    before = VQLoss()(model.eval()(DATA), DATA).reconstruction
    trainer.fit(DATA, epochs=4)
    after = VQLoss()(model.eval()(DATA), DATA).reconstruction
    assert after < before
    assert set(trainer.metrics) >= {"loss", "reconstruction", "kl"}
    assert set(trainer.evaluate(DATA)) >= {"loss", "reconstruction", "kl", "bits_per_dim"}


@pytest.mark.parametrize("ema", [False, True], ids=["gradient", "ema"])
def test_resume_is_exact_with_ema_and_restarts(tmp_path: Path, ema: bool) -> None:
    def run(folder: Path) -> Trainer:
        torch.manual_seed(0)
        model = tiny(ema=ema, restart_after=2)
        return Trainer(
            model,
            VQLoss(),
            device="cpu",
            seed=0,
            batch_size=8,
            callbacks=[ModelCheckpoint(folder, keep_last=None)],
        )

    straight = run(tmp_path / "a")
    straight.fit(DATA, epochs=3)
    first = run(tmp_path / "b")
    first.fit(DATA, epochs=1)
    resumed = run(tmp_path / "b")
    resumed.fit(DATA, epochs=3, resume="last")
    want, got = straight.model.state_dict(), resumed.model.state_dict()
    assert "codebook.unused_steps" in want
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_eval_mode_leaves_the_codebook_alone() -> None:
    model = tiny(ema=True, restart_after=1)
    model(DATA)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    model(DATA)
    model.reconstruct(DATA)
    model.train()
    model.reconstruct(DATA)  # reconstruct never updates, in either mode
    model.encode_indices(DATA)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("ema", [False, True], ids=["gradient", "ema"])
def test_save_and_load(tmp_path: Path, ema: bool) -> None:
    model = tiny(ema=ema, restart_after=5, likelihood=Gaussian(scale=0.3, link="identity"))
    Trainer(model, VQLoss(), device="cpu", seed=0, batch_size=8).fit(DATA, epochs=1)
    save_model(model, tmp_path / "vq.pt")
    loaded = VQVAE.load(tmp_path / "vq.pt")
    assert isinstance(loaded.likelihood, Gaussian) and loaded.codebook.ema is ema
    assert loaded.codebook.restart_after == 5
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert torch.equal(model.eval().reconstruct(DATA), loaded.eval().reconstruct(DATA))
    assert isinstance(load_model(tmp_path / "vq.pt"), VQVAE)


def test_bad_input_is_named() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="n_samples"):
        model(DATA, n_samples=5)
    with pytest.raises(ValueError, match="not conditional"):
        model(DATA, torch.zeros(24, dtype=torch.long))
    with pytest.raises(ValueError, match="64 features"):
        model(torch.rand(2, 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(torch.full((2, *SHAPE), float("nan")))
    unbounded = tiny(likelihood=Gaussian(link="identity"))
    with pytest.raises(ValueError, match="finite"):
        unbounded(torch.full((2, *SHAPE), float("inf")))
    with pytest.raises(ValueError, match="no prior"):
        model.sample(2)
    with pytest.raises(ValueError, match="embedding_dim"):
        VQVAE(VQEncoder(SHAPE, (4,), 5), VQDecoder(SHAPE, (4,), 3), Codebook(4, 3))
    with pytest.raises(ValueError, match="multiples"):
        VQEncoder((1, 9, 9), (4, 4), 3)
    with pytest.raises(TypeError, match="VQVAEOutput"):
        VQLoss()(DATA, DATA)  # type: ignore[arg-type]


def test_trainer_logs_code_usage() -> None:
    trainer = Trainer(tiny(), VQLoss(), device="cpu", seed=0, batch_size=8)
    trainer.fit(DATA, epochs=1)
    assert {"perplexity", "usage", "codebook", "commitment"} <= set(trainer.metrics)


def test_tensorboard_logger_shows_vq_reconstructions(tmp_path: Path) -> None:
    from torchvae.callbacks import TensorBoardLogger

    trainer = Trainer(
        tiny(), VQLoss(), device="cpu", seed=0, batch_size=8,
        callbacks=[TensorBoardLogger(tmp_path)],
    )  # fmt: skip
    trainer.fit(DATA, epochs=1)
    assert any(tmp_path.iterdir())
