"""The PixelCNN prior over code maps: normalized, autoregressive without a blind spot,
sampling; the two-stage fit; a VQ-VAE that samples, saved and loaded with its prior."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from torchvae.callbacks import ModelCheckpoint
from torchvae.io.serialization import load_model, save_model
from torchvae.models.code_prior import PixelCNNPrior
from torchvae.models.codebook import Codebook
from torchvae.models.vqnets import VQDecoder, VQEncoder
from torchvae.models.vqvae import VQVAE
from torchvae.objectives.vq import CodePriorLoss, VQLoss
from torchvae.training.trainer import Trainer
from torchvae.training.vq_fit import code_dataset, fit_code_prior

SHAPE = (1, 8, 8)
DATA = torch.rand(24, *SHAPE, generator=torch.Generator().manual_seed(0))


def vq() -> VQVAE:
    return VQVAE(
        VQEncoder(SHAPE, (4, 6), embedding_dim=3),
        VQDecoder(SHAPE, (6, 4), embedding_dim=3),
        Codebook(8, 3),
    )


def test_each_position_is_a_distribution_over_the_codes() -> None:
    prior = PixelCNNPrior(6, (3, 4), channels=8, layers=3, kernel_size=3)
    codes = torch.randint(6, (5, 3, 4))
    probs = prior.logits(codes).softmax(1)
    assert probs.shape == (5, 6, 3, 4)
    assert torch.allclose(probs.sum(1), torch.ones(5, 3, 4))
    log_p = prior.log_prob(codes)
    assert log_p.shape == (5,) and bool((log_p < 0).all())


def test_the_joint_sums_to_one_over_every_code_map() -> None:
    """Exhaustive: sum_k p(k) = 1 over all 3^4 maps holds only if the model is causal."""
    prior = PixelCNNPrior(3, (2, 2), channels=8, layers=2, kernel_size=3)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.5)  # far from a near-uniform initial model
    maps = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 2, 2)
    total = prior.log_prob(maps).detach().double().exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_a_position_depends_on_every_earlier_position_and_no_later_one() -> None:
    h, w = 4, 5
    prior = PixelCNNPrior(4, (h, w), channels=8, layers=4, kernel_size=3)
    codes = torch.randint(4, (1, h, w))
    base = prior.logits(codes)
    for i, j in itertools.product(range(h), range(w)):
        changed = codes.clone()
        changed[0, i, j] = (changed[0, i, j] + 1) % 4
        moved = (prior.logits(changed) - base).abs().amax(1)[0] > 0
        where = i * w + j
        flat = moved.flatten()
        assert not flat[: where + 1].any(), f"changing {(i, j)} changed an earlier position"
        # no blind spot: the last position sees every earlier one (top right included)
        assert where == h * w - 1 or bool(flat[-1]), f"the last position does not see {(i, j)}"


def test_samples_have_the_shape_and_come_from_the_generator() -> None:
    prior = PixelCNNPrior(5, (3, 3), channels=8, layers=2)
    a = prior.sample(4, generator=torch.Generator().manual_seed(1))
    b = prior.sample(4, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 3) and a.dtype == torch.int64
    assert torch.equal(a, b) and int(a.min()) >= 0 and int(a.max()) < 5
    assert prior.training  # sampling put the mode back


def test_zero_temperature_takes_the_most_probable_code_at_each_step() -> None:
    prior = PixelCNNPrior(5, (2, 3), channels=8, layers=2)
    codes = prior.sample(2, temperature=0.0)
    assert torch.equal(codes[0], codes[1])
    assert torch.equal(prior.logits(codes).argmax(1), codes)


def test_sampling_follows_the_model() -> None:
    """Draws of a 1x2 map match p(k) exactly enumerated (chi-square-free check)."""
    prior = PixelCNNPrior(2, (1, 2), channels=8, layers=2)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.7)
    maps = torch.tensor([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
    p = prior.log_prob(maps).exp()
    drawn = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    freq = torch.stack([(drawn == m).flatten(1).all(1).float().mean() for m in maps])
    assert torch.allclose(freq, p, atol=0.015)


def test_bad_codes_are_named() -> None:
    prior = PixelCNNPrior(4, (2, 2), channels=8, layers=1)
    with pytest.raises(ValueError, match=r"\(batch, 2, 2\)"):
        prior.log_prob(torch.zeros(3, 2, 3))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        prior.log_prob(torch.full((1, 2, 2), 4.0))
    with pytest.raises(ValueError, match="not integers"):
        prior.log_prob(torch.full((1, 2, 2), 1.5))
    with pytest.raises(ValueError, match="odd"):
        PixelCNNPrior(4, (2, 2), kernel_size=4)


def test_code_dataset_holds_the_nearest_codes_as_floats() -> None:
    model = vq()
    codes = code_dataset(model, DATA, batch_size=5)
    assert codes.shape == (24, 2, 2) and codes.dtype == torch.float32
    assert torch.equal(codes.long(), model.encode_indices(DATA))
    labelled = torch.utils.data.TensorDataset(DATA, torch.zeros(24))
    assert torch.equal(code_dataset(model, labelled), codes)


def test_two_stage_fit_then_sample_save_and_load(tmp_path: Path) -> None:
    model = vq()
    Trainer(model, VQLoss(), device="cpu", seed=0, batch_size=8).fit(DATA, epochs=2)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = fit_code_prior(
        model, DATA, DATA, epochs=3, channels=8, layers=2, device="cpu", seed=0, batch_size=8
    )
    assert model.prior is not None and model.prior.code_shape == (2, 2)
    history = [h["loss"] for h in trainer.history]
    assert history[-1] < history[0] and "val_loss" in trainer.metrics
    for key, value in frozen.items():  # the VQ-VAE itself was not trained
        assert torch.equal(value, model.state_dict()[key]), key
    g = torch.Generator().manual_seed(0)
    samples = model.sample(3, generator=g, temperature=0.8)
    assert samples.shape == (3, *SHAPE)
    save_model(model, tmp_path / "vq.pt")
    loaded = load_model(tmp_path / "vq.pt")
    assert isinstance(loaded, VQVAE) and loaded.prior is not None
    again = loaded.sample(3, generator=torch.Generator().manual_seed(0), temperature=0.8)
    assert torch.equal(samples, again)


def test_the_prior_fit_resumes_exactly(tmp_path: Path) -> None:
    model = vq()
    codes = code_dataset(model, DATA)

    def fit(folder: Path, epochs: int, resume: str | None = None) -> PixelCNNPrior:
        torch.manual_seed(0)
        prior = PixelCNNPrior(8, (2, 2), channels=8, layers=2)
        fit_code_prior(
            model, DATA, prior=prior, epochs=epochs, resume=resume, device="cpu", seed=0,
            batch_size=8, callbacks=[ModelCheckpoint(folder, keep_last=None)],
        )  # fmt: skip
        return prior

    straight = fit(tmp_path / "a", 3)
    fit(tmp_path / "b", 1)
    resumed = fit(tmp_path / "b", 3, resume="last")
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert torch.equal(straight.log_prob(codes), resumed.log_prob(codes))


def test_a_prior_of_another_model_is_refused() -> None:
    model = vq()
    with pytest.raises(ValueError, match="codes"):
        model.set_prior(PixelCNNPrior(5, (2, 2)))
    with pytest.raises(ValueError, match="shape"):
        model.set_prior(PixelCNNPrior(8, (3, 3)))
    with pytest.raises(ValueError, match="maps of shape"):
        fit_code_prior(model, DATA, prior=PixelCNNPrior(8, (3, 3)), epochs=1, device="cpu")
    with pytest.raises(TypeError, match="CodePriorOutput"):
        CodePriorLoss()(torch.zeros(2), torch.zeros(2))  # type: ignore[arg-type]
