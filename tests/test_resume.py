"""Resuming with a changed setup: what is refused (named), what may change (warned)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from torchvae.callbacks import ModelCheckpoint
from torchvae.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.training.trainer import ResumeWarning, Trainer

D = 12
Optimizer = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def adam(lr: float = 1e-3) -> Optimizer:
    return lambda params: torch.optim.Adam(params, lr=lr)


def trainer(
    folder: Path,
    latent: int = 2,
    optimizer: Optimizer | None = None,
    schedule: bool = False,
) -> Trainer:
    torch.manual_seed(0)
    model = VAE(Encoder(D, 8, latent), Decoder(latent, 8, D))
    opt = (optimizer or adam())(list(model.parameters()))
    scheduler = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5) if schedule else None
    return Trainer(
        model,
        optimizer=opt,
        scheduler=scheduler,
        callbacks=[ModelCheckpoint(folder, keep_last=None)],
        device="cpu",
        seed=0,
        batch_size=8,
    )


DATA = torch.rand(32, D, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    trainer(tmp_path).fit(DATA, epochs=2)
    return tmp_path


def test_a_changed_latent_size_says_what_differs(run: Path) -> None:
    resumed = trainer(run, latent=3)
    before = {k: v.clone() for k, v in resumed.model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        resumed.fit(DATA, epochs=3, resume="last")
    message = str(info.value)
    assert "epoch-0002.pt" in message and "model's architecture differs" in message
    assert "5 tensors with other shapes" in message
    assert "encoder.log_var.weight (2, 8) vs (3, 8)" in message
    after = resumed.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing half-loaded


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "older-checkpoint"])
def test_another_optimizer_type_says_so(run: Path, recorded: bool) -> None:
    if not recorded:  # as written before the optimizer's type was recorded
        state = load_checkpoint(run / "epoch-0002.pt")
        del state["optimizer_type"], state["optimizer_hyperparameters"]
        save_checkpoint(state, run / "epoch-0002.pt")
    sgd = trainer(run, optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    with pytest.raises(CheckpointError, match="optimizer") as info:
        sgd.fit(DATA, epochs=3, resume="last")
    if recorded:
        assert "the checkpoint's optimizer is Adam, this trainer's is SGD" in str(info.value)
    else:
        assert "another optimizer type, this trainer's is SGD" in str(info.value)


def test_a_new_learning_rate_is_used_and_warned(run: Path) -> None:
    resumed = trainer(run, optimizer=adam(1e-4))
    with pytest.warns(ResumeWarning, match=r"lr: 0\.001 in the checkpoint's run, now 0\.0001"):
        resumed.fit(DATA, epochs=3, resume="last")
    assert resumed.optimizer.param_groups[0]["lr"] == 1e-4
    assert resumed.history[-1]["lr"] == 1e-4
    moments = load_checkpoint(run / "epoch-0002.pt")["optimizer"]["state"]
    assert int(moments[0]["step"]) == 8  # the moments were restored, then stepped on
    assert int(resumed.optimizer.state_dict()["state"][0]["step"]) == 12


def test_an_unchanged_setup_resumes_silently_and_exactly(tmp_path: Path) -> None:
    straight = trainer(tmp_path / "straight", schedule=True)
    straight.fit(DATA, epochs=4)
    trainer(tmp_path / "split", schedule=True).fit(DATA, epochs=2)
    resumed = trainer(tmp_path / "split", schedule=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResumeWarning)
        resumed.fit(DATA, epochs=4, resume="last")
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**4)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_new_learning_rate_restarts_the_schedule_from_it(tmp_path: Path) -> None:
    trainer(tmp_path, schedule=True).fit(DATA, epochs=2)  # lr 1e-3 -> 2.5e-4
    resumed = trainer(tmp_path, optimizer=adam(4e-3), schedule=True)
    with pytest.warns(ResumeWarning, match=r"lr: 0\.001 in the checkpoint's run, now 0\.004"):
        resumed.fit(DATA, epochs=3, resume="last")
    assert resumed.history[-1]["lr"] == pytest.approx(4e-3)  # the epoch ran at the new rate
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)  # then one decay
    assert resumed.scheduler.base_lrs == [pytest.approx(4e-3)]


def test_other_optimizer_options_stay_the_checkpoints_with_a_warning(run: Path) -> None:
    resumed = trainer(run, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3, amsgrad=True))
    with pytest.warns(ResumeWarning, match=r"amsgrad: the checkpoint's False is kept"):
        resumed.fit(DATA, epochs=3, resume="last")
    assert resumed.optimizer.param_groups[0]["amsgrad"] is False


def test_epochs_already_done_warn_that_nothing_trains(run: Path) -> None:
    resumed = trainer(run)
    with pytest.warns(ResumeWarning, match=r"2 epochs done and epochs=2 is the total"):
        resumed.fit(DATA, epochs=2, resume="last")
    assert resumed.epoch == 2 and resumed.global_step == 8


def test_a_dropped_scheduler_is_warned(tmp_path: Path) -> None:
    trainer(tmp_path, schedule=True).fit(DATA, epochs=1)
    with pytest.warns(ResumeWarning, match="had a learning-rate scheduler, this trainer has none"):
        trainer(tmp_path).fit(DATA, epochs=2, resume="last")
