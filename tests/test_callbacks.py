"""Tests of the callbacks: hooks, checkpoints, early stopping, progress, beta, TensorBoard."""

from __future__ import annotations

import io
import math
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from torchvae.callbacks import (
    HOOKS,
    BetaSchedule,
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    TensorBoardLogger,
    image_grid,
)
from torchvae.io.checkpoint import load_checkpoint
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.schedules import Cyclical
from torchvae.training.trainer import StepOutput, Trainer

D = 16


def make_model() -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(D, 8, 2), Decoder(2, 8, D))


def make_data(n: int = 64, seed: int = 0) -> Tensor:
    return torch.rand(n, D, generator=torch.Generator().manual_seed(seed))


class Recorder(Callback):
    """Counts every hook call and checks what each receives."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def on_fit_start(self, trainer: Trainer) -> None:
        self.calls["on_fit_start"] += 1

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.calls["on_train_epoch_start"] += 1

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        assert x.shape[1:] == (D,)
        self.calls["on_train_batch_start"] += 1

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
        assert isinstance(output, StepOutput) and output.losses.total.ndim == 0
        self.calls["on_train_batch_end"] += 1

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        assert set(metrics) == {"val_loss", "val_reconstruction", "val_kl", "val_bits_per_dim"}
        self.calls["on_validation_end"] += 1

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        assert trainer.metrics["epoch"] == trainer.epoch
        self.calls["on_train_epoch_end"] += 1

    def on_fit_end(self, trainer: Trainer) -> None:
        self.calls["on_fit_end"] += 1

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.calls["on_exception"] += 1


def test_every_hook_fires_the_right_number_of_times() -> None:
    recorder = Recorder()
    trainer = Trainer(make_model(), callbacks=[recorder], device="cpu", batch_size=16)
    trainer.fit(make_data(), make_data(20, seed=1), epochs=2)
    assert recorder.calls == {
        "on_fit_start": 1,
        "on_train_epoch_start": 2,
        "on_train_batch_start": 8,
        "on_train_batch_end": 8,
        "on_validation_end": 2,
        "on_train_epoch_end": 2,
        "on_fit_end": 1,
    }
    assert set(HOOKS) == set(recorder.calls) | {"on_exception"}


def test_on_exception_fires_and_the_error_propagates() -> None:
    class Boom(Callback):
        def on_train_epoch_end(self, trainer: Trainer) -> None:
            raise KeyError("boom")

    recorder = Recorder()
    trainer = Trainer(make_model(), callbacks=[recorder, Boom()], device="cpu")
    with pytest.raises(KeyError, match="boom"):
        trainer.fit(make_data(), epochs=3)
    assert recorder.calls["on_exception"] == 1
    assert recorder.calls["on_fit_end"] == 0


def test_only_overridden_hooks_are_dispatched() -> None:
    class EndOnly(Callback):
        def on_fit_end(self, trainer: Trainer) -> None:
            pass

    trainer = Trainer(make_model(), callbacks=[EndOnly()], device="cpu")
    assert {h for h, methods in trainer._hooks.items() if methods} == {"on_fit_end"}


def test_model_checkpoint_keeps_last_n_and_best(tmp_path: Path) -> None:
    val = make_data(32, seed=1)
    trainer = Trainer(
        make_model(),
        callbacks=[ModelCheckpoint(tmp_path, keep_last=2, monitor="val_loss")],
        device="cpu",
        batch_size=16,
    )
    trainer.fit(make_data(), val, epochs=4)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "epoch-0003.pt", "epoch-0004.pt"]
    assert trainer.last_checkpoint == tmp_path / "epoch-0004.pt"
    best_epoch = min(trainer.history, key=lambda h: h["val_loss"])["epoch"]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == best_epoch
    assert best["history"][-1]["val_loss"] == min(h["val_loss"] for h in trainer.history)
    saved = load_checkpoint(tmp_path / "epoch-0004.pt")
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in saved["model"].items())
    assert saved["callbacks"]["ModelCheckpoint"]["best_score"] == pytest.approx(
        best["history"][-1]["val_loss"]
    )


def test_model_checkpoint_every_n_epochs_and_default_monitor(tmp_path: Path) -> None:
    callback = ModelCheckpoint(tmp_path, every_n_epochs=2, keep_last=None, save_best=False)
    Trainer(make_model(), callbacks=[callback], device="cpu").fit(make_data(), epochs=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002.pt", "epoch-0004.pt"]
    assert callback.monitor == "loss"


def test_unwritable_checkpoint_directory_fails_before_training(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    recorder = Recorder()
    trainer = Trainer(
        make_model(),
        callbacks=[recorder, ModelCheckpoint(tmp_path / "file" / "ckpt")],
        device="cpu",
    )
    with pytest.raises(OSError, match=r"checkpoint directory.*not writable"):
        trainer.fit(make_data(), epochs=1)
    assert recorder.calls["on_train_batch_end"] == 0


def test_early_stopping_stops_after_patience() -> None:
    values = iter([5.0, 4.0, 4.5, 4.2, 3.0, 1.0])

    class FakeMetric(Callback):
        def on_train_epoch_end(self, trainer: Trainer) -> None:
            trainer.metrics["score"] = next(values)

    stopper = EarlyStopping(monitor="score", patience=2)
    trainer = Trainer(make_model(), callbacks=[FakeMetric(), stopper], device="cpu")
    trainer.fit(make_data(), epochs=6)
    assert trainer.epoch == 4
    assert stopper.stopped_epoch == 4
    assert stopper.state_dict() == {"best": 4.0, "wait": 2, "stopped_epoch": 4}


def test_early_stopping_min_delta_and_missing_metric() -> None:
    stopper = EarlyStopping(monitor="loss", patience=1, min_delta=1e9)
    trainer = Trainer(make_model(), callbacks=[stopper], device="cpu")
    trainer.fit(make_data(), epochs=5)
    assert trainer.epoch == 2
    with pytest.raises(ValueError, match=r"val_loss.*pass val="):
        Trainer(make_model(), callbacks=[EarlyStopping()], device="cpu").fit(make_data())
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(min_delta=-1.0)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")  # type: ignore[arg-type]


def test_beta_schedule_sets_beta_each_step() -> None:
    seen: list[float] = []

    class Spy(Callback):
        def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
            seen.append(trainer.loss.beta)  # type: ignore[arg-type]

    schedule = Cyclical(period=4, ratio=0.5)
    trainer = Trainer(
        make_model(), callbacks=[BetaSchedule(schedule), Spy()], device="cpu", batch_size=8
    )
    trainer.fit(make_data(), epochs=2)
    assert seen == [schedule(t) for t in range(16)]
    assert trainer.history[-1]["beta"] == seen[-1]
    with pytest.raises(TypeError, match="schedule"):
        BetaSchedule(0.5)  # type: ignore[arg-type]


def test_progress_bar_prints_one_line_per_epoch_when_not_a_terminal() -> None:
    out = io.StringIO()
    trainer = Trainer(make_model(), callbacks=[ProgressBar(out)], device="cpu", batch_size=16)
    trainer.fit(make_data(), make_data(16, seed=1), epochs=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2  loss ")
    assert "val_loss" in lines[1] and "\r" not in out.getvalue()


def test_progress_bar_updates_a_live_line_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    trainer = Trainer(
        make_model(), callbacks=[ProgressBar(out, refresh_every=2)], device="cpu", batch_size=8
    )
    trainer.fit(make_data(), epochs=1)
    shown = out.getvalue()
    assert "\r" in shown and "epoch 1: 100%" in shown and "8/8" in shown  # tqdm's bar
    assert "batch/s" in shown and "loss=" in shown  # its rate and the live loss
    assert shown.splitlines()[-1].startswith("epoch 1  loss ")  # then the summary line


def test_progress_bar_on_an_unsized_loader_counts_batches() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    class Unsized:  # an iterable of batches without a length (a stream)
        def __iter__(self) -> Iterator[Tensor]:
            data = make_data()
            return iter([data[i : i + 8] for i in range(0, len(data), 8)])

    out = Tty()
    trainer = Trainer(make_model(), callbacks=[ProgressBar(out)], device="cpu", batch_size=8)
    trainer.fit(Unsized(), epochs=1)
    assert "8batch" in out.getvalue().replace(" ", "")


def test_image_grid_places_images() -> None:
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1) / 10
    grid = image_grid(images, n_cols=4, pad=1)
    assert grid.shape == (1, 2 * 2 + 1, 4 * 2 + 1)
    assert grid[0, 1, 1] == 0.0 and grid[0, 3, 3] == pytest.approx(0.5)
    assert grid[0, 0, 0] == 1.0


def read_events(log_dir: Path) -> list[Any]:
    """Parse every TFRecord in the event files (length, crc, payload, crc)."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            payload = data[pos + 12 : pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(payload)
            events.append(event)
    return events


def test_tensorboard_event_files_hold_scalars_images_histograms(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path / "tb", n_images=6, hparams={"data": "synthetic"})
    trainer = Trainer(
        make_model(),
        callbacks=[logger, BetaSchedule(Cyclical(period=3))],
        device="cpu",
        batch_size=16,
        log_every_n_steps=2,
    )
    trainer.fit(make_data(), make_data(16, seed=1), epochs=2)
    values = [v for e in read_events(tmp_path / "tb") for v in e.summary.value]
    scalars: dict[str, list[float]] = {}
    for v in values:
        if v.WhichOneof("value") == "simple_value":
            scalars.setdefault(v.tag, []).append(v.simple_value)
    for name in ("loss", "reconstruction", "kl", "beta", "lr", "grad_norm"):
        assert len(scalars[f"train/{name}"]) == 4, name  # steps 0, 2, 4, 6
    cycle = Cyclical(period=3)
    assert scalars["train/beta"] == pytest.approx([cycle(t) for t in (0, 2, 4, 6)])
    assert scalars["epoch/epoch"] == [1.0, 2.0]
    assert len(scalars["epoch/val_loss"]) == 2
    assert all(math.isfinite(x) for xs in scalars.values() for x in xs)
    images = [v for v in values if v.WhichOneof("value") == "image"]
    assert Counter(v.tag for v in images) == {"reconstructions": 2, "samples": 2}
    recon = next(v.image for v in images if v.tag == "reconstructions")
    assert (recon.height, recon.width) == (2 * (4 + 2) + 2, 6 * (4 + 2) + 2)
    assert recon.encoded_image_string.startswith(b"\x89PNG")
    histograms = {v.tag for v in values if v.WhichOneof("value") == "histo"}
    assert histograms == {
        "latent/posterior_mean",
        "latent/posterior_log_var",
        "latent/kl_per_dim",
    }
    for name in ("kl", "active_units", "mutual_information", "collapsed_fraction"):
        assert len(scalars[f"latent/{name}"]) == 2, name
    texts = [v for v in values if v.tag.startswith("hparams")]
    assert texts and b"synthetic" in b"".join(v.tensor.SerializeToString() for v in texts)
    assert logger.writer is None  # closed at the end


def test_samples_come_from_a_fixed_z(tmp_path: Path) -> None:
    loggers = [TensorBoardLogger(tmp_path / str(i), seed=3) for i in range(2)]
    for logger in loggers:
        Trainer(make_model(), callbacks=[logger], device="cpu").fit(make_data())
    assert loggers[0]._z is not None and torch.equal(loggers[0]._z, loggers[1]._z)


def test_tensorboard_logs_conditional_samples_and_warns_on_collapse(tmp_path: Path) -> None:
    from torchvae.diagnostics import PosteriorCollapseWarning
    from torchvae.models.conditional import ConditionalVAE

    model = ConditionalVAE.mlp(input_dim=16, hidden_dim=8, latent_dim=2, num_classes=3)
    x, y = make_data(48), torch.arange(48) % 3
    logger = TensorBoardLogger(tmp_path / "tb", n_images=6, diagnostics=40)
    trainer = Trainer(model, callbacks=[logger], device="cpu", seed=0, batch_size=16)
    with torch.no_grad():  # an encoder that ignores x: every latent dimension collapses
        for layer in (model.encoder.mean, model.encoder.log_var):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight.requires_grad_(False)
            layer.bias.requires_grad_(False)
    with pytest.warns(PosteriorCollapseWarning):
        trainer.fit(torch.utils.data.TensorDataset(x, y), epochs=1)
    values = [v for e in read_events(tmp_path / "tb") for v in e.summary.value]
    assert Counter(v.tag for v in values if v.WhichOneof("value") == "image")["samples"] == 1
    active = [v.simple_value for v in values if v.tag == "latent/active_units"]
    assert active == [0.0]


def test_collapse_is_warned_once_a_run_and_the_counts_logged_every_epoch(tmp_path: Path) -> None:
    import warnings

    from torchvae.diagnostics import PosteriorCollapseWarning

    model = make_model()
    with torch.no_grad():  # an encoder that ignores x: every latent dimension collapses
        for layer in (model.encoder.mean, model.encoder.log_var):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight.requires_grad_(False)
            layer.bias.requires_grad_(False)
    logger = TensorBoardLogger(tmp_path / "tb", diagnostics=40)
    trainer = Trainer(model, callbacks=[logger], device="cpu", seed=0, batch_size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(make_data(), epochs=3)
        trainer.fit(make_data(), epochs=4)  # a new fit, a new run: one more warning
    collapse = [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]
    assert len(collapse) == 2, [str(w.message) for w in collapse]
    values = [v for e in read_events(tmp_path / "tb") for v in e.summary.value]
    assert [v.simple_value for v in values if v.tag == "latent/active_units"] == [0.0] * 4


def test_a_model_using_part_of_its_latent_is_not_warned_about(tmp_path: Path) -> None:
    import warnings

    from torchvae.diagnostics import PosteriorCollapseWarning

    torch.manual_seed(0)
    model = VAE(Encoder(D, 8, 8), Decoder(8, 8, D))
    with torch.no_grad():  # two dimensions carry x precisely, six sit at the prior
        model.encoder.mean.weight.mul_(20)[2:] = 0
        model.encoder.mean.bias.zero_()
        model.encoder.log_var.weight.zero_()
        model.encoder.log_var.bias.copy_(torch.tensor([-6.0] * 2 + [0.0] * 6))
    model.encoder.requires_grad_(False)
    logger = TensorBoardLogger(tmp_path / "tb", diagnostics=60)
    trainer = Trainer(model, callbacks=[logger], device="cpu", seed=0, batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)  # 6 of 8 inactive: no warning
        trainer.fit(make_data(), epochs=2)
    values = [v for e in read_events(tmp_path / "tb") for v in e.summary.value]
    assert [v.simple_value for v in values if v.tag == "latent/active_units"] == [2.0, 2.0]
