"""Faults during training: a killed process, NaN/inf, a full disk, unwritable directories."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
from torch import Tensor, nn

import torchvae.io.checkpoint as checkpoint_module
from torchvae._validation import set_validation
from torchvae.callbacks import Callback, ModelCheckpoint, TensorBoardLogger
from torchvae.io._atomic import atomic_write
from torchvae.io.checkpoint import load_checkpoint, save_checkpoint
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.training.trainer import NonFiniteLossError, Trainer

SCRIPT = Path(__file__).with_name("_train_script.py")
D = 16


def make_model() -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(D, 8, 2), Decoder(2, 8, D))


def make_data(n: int = 96) -> Tensor:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, D, generator=g) * 3
    return torch.sigmoid(torch.randn(n, 2, generator=g) @ w)


def make_trainer(folder: Path, *callbacks: Callback, **kwargs: Any) -> Trainer:
    return Trainer(
        make_model(),
        callbacks=[*callbacks, ModelCheckpoint(folder, keep_last=None)],
        device="cpu",
        seed=0,
        batch_size=32,
        **kwargs,
    )


def all_finite(folder: Path) -> bool:
    files = sorted(folder.glob("*.pt"))
    assert files, f"no checkpoint in {folder}"
    return all(
        torch.isfinite(t).all()
        for f in files
        for part in ("model", "optimizer")
        for t in _tensors(load_checkpoint(f)[part])
    )


def _tensors(state: Any) -> Iterator[Tensor]:
    if isinstance(state, Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)


def _script(*args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), *args]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["--phase", "run:4", "--examples", "96"]
    full = subprocess.run(
        _script("--dir", str(tmp_path / "full"), *args),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert full.returncode == 0, full.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    ready = killed_dir / "ready"
    process = subprocess.Popen(
        _script("--dir", str(killed_dir), *args, "--hang-at", "2:3"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the training process never reached epoch 3"
            time.sleep(0.05)
        # in the third epoch, three steps into it (6 per epoch), past epoch 2's checkpoint
        assert ready.read_text().split() == ["2", "3", str(2 * 6 + 3)]
        names = sorted(p.name for p in (killed_dir / "run").iterdir())
        assert names == ["best.pt", "epoch-0001.pt", "epoch-0002.pt"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    resumed = subprocess.run(
        _script("--dir", str(killed_dir), "--phase", "run:4:resume", "--examples", "96"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "full" / "run-4-rank0.pt", weights_only=True)
    b = torch.load(killed_dir / "run-4-rank0.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert b["local"] == a["local"][2:]  # the resumed process trained epochs 3 and 4 only


class _PoisonWeights(Callback):
    """Put a NaN in the first weight before the given (0-based) step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(trainer.model.parameters())[0, 0] = math.nan


class _InfGradient(Callback):
    """Make the gradients infinite from the given (0-based) step on (the loss stays finite)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        if trainer.global_step >= self.step:
            weight = next(trainer.model.parameters())
            weight.register_hook(lambda g: g * math.inf)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("fault", "policy", "match"),
    [
        (_PoisonWeights(step=3 * 2 + 1), "raise", r"epoch 3 of 4, batch 2 \(step 8 overall\)"),
        (_InfGradient(step=3 * 2 + 1), "raise", r"gradient norm inf.*epoch 3 of 4, batch 2"),
        # skipping steps cannot clean NaN weights: they stop the run too
        (
            _PoisonWeights(step=3 * 2 + 1),
            "skip",
            r"weights hold NaN or inf at epoch 3 of 4, batch 2",
        ),
    ],
    ids=["nan-weights-raise", "inf-gradient-raise", "nan-weights-skip"],
)
def test_a_nan_never_reaches_a_checkpoint(
    tmp_path: Path, fault: Callback, policy: str, match: str
) -> None:
    trainer = make_trainer(tmp_path, fault, nan_policy=policy)
    with pytest.raises(NonFiniteLossError, match=match) as info:
        trainer.fit(make_data(), epochs=4)
    assert "epoch-0002.pt" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt",
        "epoch-0001.pt",
        "epoch-0002.pt",
    ]
    assert all_finite(tmp_path)


def test_nan_weights_the_model_does_not_catch_are_not_checkpointed(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, _PoisonWeights(step=3 * 2 + 1), nan_policy="skip")
    set_validation(False)  # the model's own checks off: the trainer's step check finds it
    try:
        with pytest.raises(NonFiniteLossError, match="NaN or inf at epoch 3 of 4, batch 2"):
            trainer.fit(make_data(), epochs=4)
    finally:
        set_validation(True)
    assert trainer.skipped_steps == 0  # skipping cannot clean the weights: it stops at once
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt",
        "epoch-0001.pt",
        "epoch-0002.pt",
    ]
    assert all_finite(tmp_path)


class _NaNBatches(Callback):
    """Turns the batches of the given global steps into NaN (as bad data would be)."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        if trainer.global_step in self.steps:
            x.fill_(math.nan)


def _fit_without_input_checks(trainer: Trainer, epochs: int) -> None:
    set_validation(False)  # let the NaN reach the loss instead of failing the input check
    try:
        trainer.fit(make_data(), epochs=epochs)
    finally:
        set_validation(True)


def test_an_epoch_of_only_skipped_steps_stops_the_run(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, _NaNBatches({0, 1, 2}), nan_policy="skip")
    with pytest.raises(
        NonFiniteLossError,
        match=r"every step of epoch 1 of 2 \(3 steps\) was skipped.*no checkpoint was written",
    ):
        _fit_without_input_checks(trainer, epochs=2)
    assert trainer.skipped_steps == 3 and trainer.history == []
    assert not list(tmp_path.glob("*.pt"))


def test_a_later_skipped_epoch_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, _NaNBatches({3, 4, 5}), nan_policy="skip")
    with pytest.raises(NonFiniteLossError, match=r"every step of epoch 2 of 3.*epoch-0001\.pt"):
        _fit_without_input_checks(trainer, epochs=3)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "epoch-0001.pt"]
    assert all_finite(tmp_path)


def test_a_run_of_skipped_steps_stops_at_the_limit(tmp_path: Path) -> None:
    apart = make_trainer(tmp_path / "a", _NaNBatches({1, 3, 4}), nan_policy="skip")
    apart.max_consecutive_skips = 3
    _fit_without_input_checks(apart, epochs=2)  # runs of 1 and 2: under the limit
    assert apart.skipped_steps == 3
    limited = Trainer(
        make_model(),
        device="cpu",
        batch_size=32,
        nan_policy="skip",
        max_consecutive_skips=2,
        callbacks=[_NaNBatches({2, 3})],
    )
    with pytest.raises(
        NonFiniteLossError,
        match=r"2 steps in a row.*max_consecutive_skips=2.*epoch 2 of 2, batch 1",
    ):
        _fit_without_input_checks(limited, epochs=2)
    with pytest.raises(ValueError, match="max_consecutive_skips"):
        Trainer(make_model(), max_consecutive_skips=0)


def test_stray_temporary_files_of_a_killed_write_are_removed_at_the_next_start(
    tmp_path: Path,
) -> None:
    stray = [tmp_path / ".epoch-0003.pt.k2j_x9ab.tmp", tmp_path / ".best.pt.abcdefgh.tmp"]
    kept = [tmp_path / ".notes.txt.abcdefgh.tmp", tmp_path / "mine.tmp"]
    for path in (*stray, *kept):
        path.write_bytes(b"half a checkpoint")
    make_trainer(tmp_path).fit(make_data(), epochs=1)
    assert not any(p.exists() for p in stray)
    assert all(p.exists() for p in kept)  # not a checkpoint's: not ours to remove


def _failing_writer(fail_on: str) -> Any:
    @contextlib.contextmanager
    def writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
        with atomic_write(path) as f:
            if Path(path).name == fail_on:
                f.write(b"the first bytes of a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield f

    return writer


def test_disk_full_mid_run_keeps_the_last_checkpoint_and_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uninterrupted = make_trainer(tmp_path / "full")
    uninterrupted.fit(make_data(), epochs=4)

    folder = tmp_path / "full-disk"
    trainer = make_trainer(folder)
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module, "atomic_write", _failing_writer("epoch-0003.pt"))
        with pytest.raises(OSError) as info:
            trainer.fit(make_data(), epochs=4)
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert f"cannot write {folder / 'epoch-0003.pt'}" in message
    assert "No space left on device" in message
    assert f"the last good checkpoint is {str(folder / 'epoch-0002.pt')!r}" in message
    assert "save_checkpoint(trainer.state_dict(), path)" in message
    # the previous files are intact and no temporary file is left behind
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "epoch-0001.pt", "epoch-0002.pt"]
    assert load_checkpoint(folder / "epoch-0002.pt")["epoch"] == 2

    # the work of epoch 3 is still in memory: saved elsewhere, it resumes exactly
    elsewhere = save_checkpoint(trainer.state_dict(), tmp_path / "elsewhere.pt")
    resumed = make_trainer(tmp_path / "resumed")
    resumed.fit(make_data(), epochs=4, resume=elsewhere)
    a, b = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_too_little_free_space_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        total, used, free = 10**9, 10**9 - 100, 100

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage())
    trainer = make_trainer(tmp_path / "ckpt")
    with pytest.raises(OSError, match=r"'.*ckpt' has 0\.0 MiB free, but one checkpoint") as info:
        trainer.fit(make_data(), epochs=2)
    assert info.value.errno == errno.ENOSPC
    assert trainer.global_step == 0


def test_unwritable_tensorboard_directory_fails_before_training(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX", reason="the TensorBoard logger needs tensorboardX")
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    trainer = Trainer(make_model(), callbacks=[TensorBoardLogger(blocker / "runs")], device="cpu")
    with pytest.raises(OSError, match=r"TensorBoard log directory '.*runs' is not writable"):
        trainer.fit(make_data(), epochs=1)
    assert trainer.global_step == 0


def test_an_error_before_any_step_is_not_reworded(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    trainer = make_trainer(blocker / "ckpt")
    with pytest.raises(OSError) as info:
        trainer.fit(make_data(), epochs=1)
    assert "checkpoint directory" in str(info.value)
    assert "last good checkpoint" not in str(info.value)


def test_model_in_memory_is_usable_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(tmp_path)
    monkeypatch.setattr(checkpoint_module, "atomic_write", _failing_writer("epoch-0001.pt"))
    with pytest.raises(OSError, match="no checkpoint was written"):
        trainer.fit(make_data(), epochs=2)
    assert trainer.epoch == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert isinstance(trainer.model, nn.Module)
    assert math.isfinite(trainer.evaluate(make_data(32))["loss"])
