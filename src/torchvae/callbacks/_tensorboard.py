"""TensorBoard logs: scalars, image grids, histograms and latent diagnostics."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..diagnostics import latent_report, warn_if_collapsed
from ..io._atomic import check_writable
from ..models.vae import VAE
from ._base import Callback, StepOutput, TrainerView

__all__ = ["TensorBoardLogger", "image_grid"]


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

    def _hparams(self, trainer: TrainerView) -> dict[str, Any]:
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

    def _open(self, trainer: TrainerView) -> Any:
        """The writer (``add_scalar``, ``add_image``, ...); other trackers give their own."""
        from tensorboardX import SummaryWriter

        check_writable(self.log_dir, "TensorBoard log directory")
        # Event files are named by the second they start in; a second fit (or a resume)
        # within the same second would overwrite the first's file without this suffix.
        return SummaryWriter(str(self.log_dir), filename_suffix=f".{time.time_ns()}")

    def on_fit_start(self, trainer: TrainerView) -> None:
        if not trainer.is_global_zero:
            return
        self._warned_collapse = False
        self.writer = self._open(trainer)
        table = "\n".join(f"| {k} | {v} |" for k, v in self._hparams(trainer).items())
        self.writer.add_text(
            "hparams", "| name | value |\n|---|---|\n" + table, trainer.global_step
        )
        latent_dim = getattr(trainer.model, "latent_dim", None)
        if isinstance(latent_dim, int):
            g = torch.Generator().manual_seed(self.seed)
            self._z = torch.randn(self.n_images, latent_dim, generator=g).to(trainer.device)

    def on_train_batch_end(self, trainer: TrainerView, output: StepOutput) -> None:
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

    def _to_picture(self, trainer: TrainerView, values: Tensor) -> Tensor:
        """Values in the likelihood's data range, scaled to [0, 1] to show."""
        likelihood = getattr(trainer.model, "likelihood", None)
        low, high = getattr(likelihood, "data_range", None) or (0.0, 1.0)
        return ((values.float() - low) / (high - low)).clamp(0, 1)

    @torch.no_grad()
    def _mean(self, trainer: TrainerView, logits: Tensor) -> Tensor:
        """The mean of p(x|z) for a model without one of its own (the loss's likelihood)."""
        likelihood = getattr(trainer.loss, "likelihood", None)
        return likelihood.mean(logits) if likelihood is not None else torch.sigmoid(logits)

    @torch.no_grad()
    def _reconstructions(self, trainer: TrainerView, x: Tensor, out: Any) -> Tensor:
        model = trainer.model
        if isinstance(model, VAE):
            return model.reconstruct(x, y=self._y if trainer.conditional else None)
        reconstruct = getattr(model, "reconstruct", None)
        if callable(reconstruct) and not trainer.conditional:  # e.g. a VQVAE
            rebuilt = reconstruct(x)
            if isinstance(rebuilt, Tensor):
                return rebuilt
        decode = getattr(model, "decode_logits", None)
        logits = decode(out.mean) if decode is not None and not trainer.conditional else out.logits
        return self._mean(trainer, logits.reshape(x.shape))

    @torch.no_grad()
    def _samples(self, trainer: TrainerView) -> Tensor | None:
        """Decoded draws from the model's prior; the same noise every epoch (from ``seed``)."""
        model = trainer.model
        n = self.n_images
        labels = None
        if trainer.conditional:
            classes = int(getattr(model, "num_classes", 1))
            labels = torch.arange(n, device=trainer.device) % classes
        g = torch.Generator(device=trainer.device).manual_seed(self.seed)
        if isinstance(model, VAE):
            return model.sample(n, generator=g, y=labels)
        sample = getattr(model, "sample", None)
        if callable(sample) and labels is None and getattr(model, "can_sample", True):
            drawn = sample(n, generator=g)
            return drawn if isinstance(drawn, Tensor) else None
        decode = getattr(model, "decode_logits", None)
        if self._z is None or decode is None:
            return None
        logits = decode(self._z) if labels is None else decode(self._z, labels)
        return self._mean(trainer, logits)

    @torch.no_grad()
    def _log_images(self, trainer: TrainerView, step: int) -> None:
        model, x = trainer.model, self._x
        assert x is not None
        was_training = model.training
        model.eval()
        try:
            out = trainer.forward(x, self._y)
            if hasattr(out, "mean") and hasattr(out, "log_var"):  # a Gaussian posterior
                self.writer.add_histogram("latent/posterior_mean", out.mean.float().cpu(), step)
                self.writer.add_histogram(
                    "latent/posterior_log_var", out.log_var.float().cpu(), step
                )
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

    def on_train_epoch_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        for name, value in trainer.metrics.items():
            self.writer.add_scalar(f"epoch/{name}", value, trainer.epoch)
        if self._x is not None:
            self._log_images(trainer, trainer.epoch)
        if self.diagnostics:
            self._log_diagnostics(trainer, trainer.epoch)
        self.writer.flush()

    def _log_diagnostics(self, trainer: TrainerView, step: int) -> None:
        if not getattr(trainer.model, "latent_diagnostics", True):  # e.g. discrete codes
            return
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

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        final = {
            f"hparam/{k}": float(v)
            for k, v in trainer.metrics.items()
            if k not in ("epoch", "step")
        }
        self.writer.add_hparams(self._hparams(trainer), final, name="hparams")
        self._close()

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
