r"""Callbacks: everything optional in training hangs off the :class:`~torchvae.trainer.Trainer`.

A callback subclasses :class:`Callback` and overrides the hooks it needs; the trainer calls
a callback only for the hooks it overrides (so a callback without a per-step hook adds
nothing to a step). Hooks receive the trainer first and may read ``trainer.model``,
``trainer.loss``, ``trainer.optimizer``, ``trainer.epoch`` (epochs done),
``trainer.global_step``, ``trainer.metrics`` (the last epoch's metrics: ``loss``,
``reconstruction``, ``kl``, ``beta``, ``lr``, ``time``, and ``val_*`` with validation
data) and set ``trainer.should_stop``. Callbacks with state (:meth:`Callback.state_dict`)
are saved in checkpoints and restored on resume. :class:`ModelCheckpoint` always runs
last, so that it saves the other callbacks' state of the same epoch.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from ._io import check_writable, remove_stray_temps
from ._validation import check_positive_int
from .checkpoint import save_checkpoint
from .diagnostics import latent_report, warn_if_collapsed
from .model import VAE
from .schedules import Schedule

if TYPE_CHECKING:
    from .trainer import StepOutput, Trainer

__all__ = [
    "HOOKS",
    "BetaSchedule",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "ProgressBar",
    "TensorBoardLogger",
]

HOOKS = (
    "on_fit_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_end",
    "on_train_epoch_end",
    "on_fit_end",
    "on_exception",
)


class Callback:
    """Base class: override the hooks you need; the others cost nothing.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_train_epoch_end(self, trainer):
        ...         print(f"epoch {trainer.epoch}: {trainer.metrics['loss']:.1f}")
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume has restored the state)."""

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        """Before each epoch; ``trainer.epoch`` is the number of epochs done."""

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        """Before each training step, with the batch on the device."""

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
        """After each training step; ``trainer.global_step`` counts steps done."""

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After validation, with its metrics (``val_loss``, ...)."""

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        """After each epoch (and validation); ``trainer.metrics`` holds its metrics."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """When training stops with an exception (re-raised after the callbacks)."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


def _is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def _monitored(trainer: Trainer, monitor: str, who: str) -> float:
    if monitor not in trainer.metrics:
        raise ValueError(
            f"{who}: monitor={monitor!r} is not among the epoch's metrics "
            f"{sorted(trainer.metrics)}"
            + ("; pass val= to fit" if monitor.startswith("val_") else "")
        )
    return float(trainer.metrics[monitor])


_CHECKPOINT_NAMES = re.compile(r"epoch-\d+\.pt|best\.pt")


class ModelCheckpoint(Callback):
    """Save a checkpoint every ``every_n_epochs`` epochs, keep the last ``keep_last``, and the best.

    Files: ``dirpath/epoch-NNNN.pt`` (``NNNN`` = epochs done) and ``dirpath/best.pt``,
    each written atomically (a crash mid-write leaves the previous file intact, and the
    temporary file it leaves is removed when the next run starts). Only the rank-0
    process writes. Resume with ``trainer.fit(..., resume="last")``.

    Args:
        dirpath: the directory, created if needed; checked writable when fit starts.
        every_n_epochs: save period.
        keep_last: how many ``epoch-*.pt`` files to keep (``None``: all).
        save_best: also keep ``best.pt``, the checkpoint with the best ``monitor``.
        monitor: metric deciding the best; default ``"val_loss"`` with validation data,
            else ``"loss"``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        every_n_epochs: int = 1,
        keep_last: int | None = 3,
        save_best: bool = True,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.keep_last = None if keep_last is None else check_positive_int(keep_last, "keep_last")
        self.save_best, self.monitor, self.mode = save_best, monitor, _check_mode(mode)
        self.best_score: float | None = None
        self.best_path: str | None = None
        self.saved: list[str] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.is_global_zero:
            check_writable(self.dirpath, "checkpoint directory")
            remove_stray_temps(self.dirpath, _CHECKPOINT_NAMES)  # left by a killed run
        if self.monitor is None:
            self.monitor = "val_loss" if trainer.val is not None else "loss"

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero:
            return
        periodic = trainer.epoch % self.every_n_epochs == 0
        better = False
        if self.save_best:
            assert self.monitor is not None
            score = _monitored(trainer, self.monitor, "ModelCheckpoint")
            better = _is_better(score, self.best_score, self.mode)
            if better:
                self.best_score, self.best_path = score, str(self.dirpath / "best.pt")
        if not (periodic or better):
            return
        path = self.dirpath / f"epoch-{trainer.epoch:04d}.pt"
        if periodic:
            self.saved.append(str(path))
        state = trainer.state_dict()  # after the updates above, so it holds them
        if periodic:
            save_checkpoint(state, path)
            trainer.last_checkpoint = path
            while self.keep_last is not None and len(self.saved) > self.keep_last:
                Path(self.saved.pop(0)).unlink(missing_ok=True)
        if better:
            save_checkpoint(state, self.dirpath / "best.pt")

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_path": self.best_path,
            "saved": list(self.saved),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score, self.best_path = state["best_score"], state["best_path"]
        self.saved = list(state["saved"])


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: an epoch metric, e.g. ``"val_loss"`` or ``"loss"``.
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"min_delta must be a finite float >= 0, got {min_delta}")
        self.monitor, self.min_delta, self.mode = monitor, min_delta, _check_mode(mode)
        self.patience = check_positive_int(patience, "patience")
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        value = _monitored(trainer, self.monitor, "EarlyStopping")
        if _is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.should_stop = True
            self.stopped_epoch = trainer.epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.wait, self.stopped_epoch = (
            state["best"],
            state["wait"],
            state["stopped_epoch"],
        )


class BetaSchedule(Callback):
    r"""Set ``loss.beta`` before each step from a schedule of the global step.

    Args:
        schedule: a :class:`~torchvae.schedules.Schedule` (``Linear(steps=...)`` for KL
            warm-up, ``Cyclical(period=...)``) or any callable ``step -> beta``.

    Example:
        >>> from torchvae.schedules import Linear
        >>> callback = BetaSchedule(Linear(steps=1000))
    """

    def __init__(self, schedule: Schedule | Callable[[int], float]) -> None:
        if not callable(schedule):
            raise TypeError(
                f"schedule must be callable (step -> beta), got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.beta: float | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not hasattr(trainer.loss, "beta"):
            raise TypeError(
                f"BetaSchedule needs a loss with a beta, got {type(trainer.loss).__name__}"
            )

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        self.beta = float(self.schedule(trainer.global_step))
        setattr(trainer.loss, "beta", self.beta)  # noqa: B010 (nn.Module's type hides it)

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.beta = state["beta"]


class ProgressBar(Callback):
    """Progress on a terminal; one summary line per epoch otherwise (logs, CI).

    Args:
        stream: where to write; default ``sys.stdout``.
        refresh_every: steps between updates of the live line (each costs a sync).
    """

    def __init__(self, stream: IO[str] | None = None, refresh_every: int = 20) -> None:
        self.stream = stream
        self.refresh_every = check_positive_int(refresh_every, "refresh_every")
        self._start, self._batch = 0.0, 0

    @property
    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def _live(self) -> bool:
        return bool(getattr(self._out, "isatty", lambda: False)())

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self._start, self._batch = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
        self._batch += 1
        if self._batch % self.refresh_every or not self._live or not trainer.is_global_zero:
            return
        total = f"/{trainer.num_batches}" if trainer.num_batches else ""
        loss = output.losses.total.item()
        line = f"epoch {trainer.epoch + 1}  {self._batch}{total}  loss {loss:.4g}"
        width = shutil.get_terminal_size().columns - 1
        self._out.write("\r" + line[:width].ljust(width))
        self._out.flush()

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.metrics
        parts = [
            f"epoch {trainer.epoch}",
            f"loss {m['loss']:.4f}",
            f"rec {m['reconstruction']:.4f}",
        ]
        parts += [f"kl {m['kl']:.4f}"] + [
            f"{k} {v:.4f}" for k, v in m.items() if k.startswith("val_")
        ]
        if m.get("skipped_steps"):
            parts.append(f"skipped {int(m['skipped_steps'])}")
        parts.append(f"{time.perf_counter() - self._start:.1f}s")
        self._out.write(("\r" if self._live else "") + "  ".join(parts) + "\n")
        self._out.flush()


def image_grid(images: Tensor, n_cols: int = 8, pad: int = 2) -> Tensor:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(C, H', W')`` image."""
    n, c, h, w = images.shape
    n_rows = math.ceil(n / n_cols)
    grid = images.new_ones(c, n_rows * (h + pad) + pad, n_cols * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, n_cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def _as_images(x: Tensor) -> Tensor | None:
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x.unsqueeze(1)
    side = math.isqrt(x[0].numel())
    return x.reshape(-1, 1, side, side) if side * side == x[0].numel() else None


class TensorBoardLogger(Callback):
    """Log to TensorBoard with tensorboardX (imported when training starts).

    Per step (every ``trainer.log_every_n_steps``): ``train/loss``, ``train/reconstruction``,
    ``train/kl``, ``train/beta``, ``train/lr``, ``train/grad_norm``. Per epoch: every
    epoch metric under ``epoch/``; the image ``reconstructions`` (a fixed batch of inputs,
    each row of inputs followed by a row of their reconstructions from the posterior mean);
    ``samples`` decoded from a fixed :math:`z` drawn once with ``seed``; histograms of the
    posterior means and log-variances of that batch; latent diagnostics (see
    :func:`~torchvae.latent_report`) under ``latent/``: KL, active units, mutual information,
    marginal KL, the fraction of collapsed dimensions, and a histogram of the KL per
    dimension, computed on the validation data (or, without it, on the first training
    examples), with one :class:`~torchvae.PosteriorCollapseWarning` per run when the
    posterior has collapsed (no active dimension, or :math:`I(x; z)` near 0; see
    :func:`~torchvae.warn_if_collapsed`). The hyper-parameters go to a text entry at the
    start and to ``add_hparams`` with the final metrics at the end.

    Args:
        log_dir: the run's directory (created, checked writable when fit starts).
        n_images: how many inputs and samples to show.
        seed: seed of the fixed :math:`z` and of the diagnostics' sampling.
        hparams: extra hyper-parameters to record (batch size, data set, ...).
        diagnostics: how many examples the latent diagnostics use each epoch; 0 turns
            them off.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        n_images: int = 16,
        seed: int = 0,
        hparams: Mapping[str, Any] | None = None,
        diagnostics: int = 1000,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.n_images = check_positive_int(n_images, "n_images")
        self.seed = seed
        self.hparams = dict(hparams or {})
        if isinstance(diagnostics, bool) or not isinstance(diagnostics, int) or diagnostics < 0:
            raise ValueError(f"diagnostics must be an int >= 0, got {diagnostics!r}")
        self.diagnostics = diagnostics
        self.writer: Any = None
        self._x: Tensor | None = None
        self._y: Tensor | None = None
        self._z: Tensor | None = None
        self._seen: list[tuple[Tensor, Tensor | None]] = []
        self._n_seen = 0
        self._warned_collapse = False

    def _hparams(self, trainer: Trainer) -> dict[str, Any]:
        group = trainer.optimizer.param_groups[0]
        found: dict[str, Any] = {
            "model": type(trainer.model).__name__,
            "loss": repr(trainer.loss).replace("\n", " "),
            "optimizer": type(trainer.optimizer).__name__,
            "lr": float(group["lr"]),
            "precision": trainer.precision,
            "grad_clip": trainer.grad_clip if trainer.grad_clip is not None else "none",
            "seed": trainer.seed if trainer.seed is not None else "none",
            "batch_size": trainer.batch_size,
            "latent_dim": getattr(trainer.model, "latent_dim", "unknown"),
        }
        found.update(self.hparams)
        return {
            k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in found.items()
        }

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero:
            return
        from tensorboardX import SummaryWriter

        self._warned_collapse = False
        check_writable(self.log_dir, "TensorBoard log directory")
        # Event files are named by the second they start in; a second fit (or a resume)
        # within the same second would overwrite the first's file without this suffix.
        self.writer = SummaryWriter(str(self.log_dir), filename_suffix=f".{time.time_ns()}")
        table = "\n".join(f"| {k} | {v} |" for k, v in self._hparams(trainer).items())
        self.writer.add_text(
            "hparams", "| name | value |\n|---|---|\n" + table, trainer.global_step
        )
        latent_dim = getattr(trainer.model, "latent_dim", None)
        if isinstance(latent_dim, int):
            g = torch.Generator().manual_seed(self.seed)
            self._z = torch.randn(self.n_images, latent_dim, generator=g).to(trainer.device)

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
        if self.writer is None:
            return
        if self._x is None:
            self._x = output.x[: self.n_images].detach().clone()
            self._y = None if output.y is None else output.y[: self.n_images].clone()
        if self._n_seen < self.diagnostics and trainer.val is None:
            take = self.diagnostics - self._n_seen
            y = None if output.y is None else output.y[:take].clone()
            self._seen.append((output.x[:take].detach().clone(), y))
            self._n_seen += min(take, output.x.shape[0])
        step = trainer.global_step - 1
        if step % trainer.log_every_n_steps:
            return
        losses = output.losses
        values = torch.stack([losses.total, losses.reconstruction, losses.kl]).tolist()
        for name, value in zip(("loss", "reconstruction", "kl"), values, strict=True):
            self.writer.add_scalar(f"train/{name}", value, step)
        self.writer.add_scalar("train/beta", float(getattr(trainer.loss, "beta", 1.0)), step)
        self.writer.add_scalar("train/lr", float(trainer.optimizer.param_groups[0]["lr"]), step)
        self.writer.add_scalar("train/grad_norm", float(output.grad_norm), step)

    def _to_picture(self, trainer: Trainer, values: Tensor) -> Tensor:
        """Values in the likelihood's data range, scaled to [0, 1] to show."""
        likelihood = getattr(trainer.model, "likelihood", None)
        low, high = getattr(likelihood, "data_range", None) or (0.0, 1.0)
        return ((values.float() - low) / (high - low)).clamp(0, 1)

    @torch.no_grad()
    def _mean(self, trainer: Trainer, logits: Tensor) -> Tensor:
        """The mean of p(x|z) for a model without one of its own (the loss's likelihood)."""
        likelihood = getattr(trainer.loss, "likelihood", None)
        return likelihood.mean(logits) if likelihood is not None else torch.sigmoid(logits)

    @torch.no_grad()
    def _reconstructions(self, trainer: Trainer, x: Tensor, out: Any) -> Tensor:
        model = trainer.model
        if isinstance(model, VAE):
            return model.reconstruct(x, y=self._y if trainer._conditional else None)
        decode = getattr(model, "decode_logits", None)
        logits = decode(out.mean) if decode is not None and not trainer._conditional else out.logits
        return self._mean(trainer, logits.reshape(x.shape))

    @torch.no_grad()
    def _samples(self, trainer: Trainer) -> Tensor | None:
        """Decoded draws from the model's prior; the same noise every epoch (from ``seed``)."""
        model = trainer.model
        n = self.n_images
        labels = None
        if trainer._conditional:
            classes = int(getattr(model, "num_classes", 1))
            labels = torch.arange(n, device=trainer.device) % classes
        if isinstance(model, VAE):
            g = torch.Generator(device=trainer.device).manual_seed(self.seed)
            return model.sample(n, generator=g, y=labels)
        decode = getattr(model, "decode_logits", None)
        if self._z is None or decode is None:
            return None
        logits = decode(self._z) if labels is None else decode(self._z, labels)
        return self._mean(trainer, logits)

    @torch.no_grad()
    def _log_images(self, trainer: Trainer, step: int) -> None:
        model, x = trainer.model, self._x
        assert x is not None
        was_training = model.training
        model.eval()
        try:
            out = trainer.forward(x, self._y)
            self.writer.add_histogram("latent/posterior_mean", out.mean.float().cpu(), step)
            self.writer.add_histogram("latent/posterior_log_var", out.log_var.float().cpu(), step)
            inputs = _as_images(self._to_picture(trainer, x))
            recon = _as_images(self._to_picture(trainer, self._reconstructions(trainer, x, out)))
            if inputs is not None and recon is not None:
                n_cols = min(8, inputs.shape[0])
                rows = [
                    t
                    for i in range(0, inputs.shape[0], n_cols)
                    for t in (inputs[i : i + n_cols], recon[i : i + n_cols])
                ]
                grid = image_grid(torch.cat(rows).clamp(0, 1).cpu(), n_cols)
                self.writer.add_image("reconstructions", grid, step)
            drawn = self._samples(trainer)
            samples = None if drawn is None else _as_images(self._to_picture(trainer, drawn))
            if samples is not None:
                self.writer.add_image("samples", image_grid(samples.cpu()), step)
        finally:
            model.train(was_training)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        for name, value in trainer.metrics.items():
            self.writer.add_scalar(f"epoch/{name}", value, trainer.epoch)
        if self._x is not None:
            self._log_images(trainer, trainer.epoch)
        if self.diagnostics:
            self._log_diagnostics(trainer, trainer.epoch)
        self.writer.flush()

    def _log_diagnostics(self, trainer: Trainer, step: int) -> None:
        data: Any = trainer.val
        if data is None:
            if self._n_seen < 2:
                return
            xs, ys = zip(*self._seen, strict=True)
            x = torch.cat(xs)
            data = [x] if ys[0] is None else [(x, torch.cat([y for y in ys if y is not None]))]
        report = latent_report(
            trainer.model,
            data,
            max_examples=self.diagnostics,
            generator=torch.Generator().manual_seed(self.seed),
        )
        for name, value in report.scalars().items():
            self.writer.add_scalar(f"latent/{name}", value, step)
        if report.kl_per_dim is not None:
            self.writer.add_histogram("latent/kl_per_dim", report.kl_per_dim.float().cpu(), step)
        if not self._warned_collapse:  # once a run: the counts are logged every epoch
            self._warned_collapse = warn_if_collapsed(report)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        final = {
            f"hparam/{k}": float(v)
            for k, v in trainer.metrics.items()
            if k not in ("epoch", "step")
        }
        self.writer.add_hparams(self._hparams(trainer), final, name="hparams")
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
