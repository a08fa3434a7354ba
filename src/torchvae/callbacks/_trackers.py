"""Experiment trackers beside TensorBoard: MLflow and Weights & Biases.

Both log what :class:`~torchvae.TensorBoardLogger` logs (the per-step and per-epoch
scalars, the reconstruction and sample grids, the latent diagnostics) and the run's
configuration, through a writer with TensorBoard's methods (``add_scalar``,
``add_image``, ...) that forwards to the tracker. The trackers are optional extras,
imported when training starts: ``pip install torchvae[trackers]``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ._base import TrainerView
from ._tensorboard import TensorBoardLogger

__all__ = ["MLflowLogger", "WandbLogger", "require"]


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module``, or say which extra of torchvae installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{what} needs the {module!r} package: pip install torchvae[{extra}] "
            f"(or pip install {module})"
        ) from e


def _picture(image: Tensor) -> np.ndarray[Any, Any]:
    """A ``(C, H, W)`` image in [0, 1] as ``(H, W, C)`` (or ``(H, W)``) bytes."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to("cpu").numpy()
    array = array.astype(np.uint8).transpose(1, 2, 0)
    picture: np.ndarray[Any, Any] = array[..., 0] if array.shape[2] == 1 else array
    return picture


def _params(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v)[:6000] for k, v in values.items()}  # MLflow's bound on a value


class _MLflowWriter:
    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.client.log_metric(self.run_id, tag, float(value), step=int(step))

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self.client.log_image(self.run_id, _picture(image), f"{tag}/step-{step:06d}.png")

    def add_histogram(self, tag: str, values: Tensor, step: int) -> None:
        pass  # MLflow has no histograms; the summaries are the latent/ scalars

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"{tag}.md")

    def add_hparams(
        self, hparams: Mapping[str, Any], metrics: Mapping[str, float], **_: Any
    ) -> None:
        pass  # logged as params when the run starts; the metrics are already logged

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


class MLflowLogger(TensorBoardLogger):
    """Log a run to MLflow: its scalars as metrics, image grids as artifacts, config as params.

    Metric names are TensorBoard's (``train/loss`` at each logged step, ``epoch/val_loss``
    at each epoch, ``latent/active_units``, ...); the reconstruction and sample grids are
    PNG artifacts under ``reconstructions/`` and ``samples/``; the hyper-parameters (and
    ``hparams``, e.g. the ``torchvae train`` settings) are the run's params. The run ends
    ``FINISHED``, or ``FAILED`` if training raised.

    Args:
        tracking_uri: where MLflow stores runs (a server, ``sqlite:///mlflow.db``, or a
            folder as ``file:///path``); default: MLflow's own (``MLFLOW_TRACKING_URI``).
        experiment: the experiment's name, created if absent; default MLflow's default.
        run_name: the run's name.
        run_id: an existing run to continue (for example after a resume).
        n_images: how many inputs and samples to show.
        seed: seed of the fixed samples and of the diagnostics' sampling.
        hparams: extra hyper-parameters to record (the data set, ...).
        diagnostics: examples the latent diagnostics use each epoch; 0 turns them off.

    Raises:
        ImportError: when training starts, if MLflow is not installed (``pip install
            torchvae[trackers]``).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        n_images: int = 16,
        seed: int = 0,
        hparams: Mapping[str, Any] | None = None,
        diagnostics: int = 1000,
    ) -> None:
        super().__init__(".", n_images, seed, hparams, diagnostics)
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_name, self.run_id = run_name, run_id

    def _open(self, trainer: TrainerView) -> Any:
        mlflow = require("mlflow", "trackers", "MLflowLogger")
        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        if self.run_id is None:
            experiment_id = "0"
            if self.experiment is not None:
                found = client.get_experiment_by_name(self.experiment)
                experiment_id = (
                    found.experiment_id if found else client.create_experiment(self.experiment)
                )
            run = client.create_run(experiment_id, run_name=self.run_name)
            self.run_id = run.info.run_id
            client.log_batch(
                self.run_id,
                params=[
                    mlflow.entities.Param(k, v) for k, v in _params(self._hparams(trainer)).items()
                ],
            )
        else:
            client.update_run(self.run_id, status="RUNNING")
        return _MLflowWriter(client, self.run_id)

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close(status="FAILED")
            self.writer = None


class _WandbWriter:
    """Commits one W&B step per tracker step; each scalar family keeps its own axis."""

    def __init__(self, wandb: Any, run: Any) -> None:
        self.wandb, self.run = wandb, run
        self.pending: dict[str, Any] = {}
        self.at: tuple[str, int] | None = None
        for axis in ("train", "epoch"):
            run.define_metric(f"{axis}_step")
        run.define_metric("train/*", step_metric="train_step")
        for family in ("epoch", "latent", "reconstructions", "samples"):
            run.define_metric(f"{family}/*", step_metric="epoch_step")

    def _add(self, tag: str, value: Any, step: int) -> None:
        axis = "train" if tag.startswith("train/") else "epoch"
        if self.at != (axis, step) or tag in self.pending:
            self.flush()
        self.at = (axis, step)
        self.pending[tag] = value
        self.pending[f"{axis}_step"] = step

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._add(tag, float(value), int(step))

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self._add(tag, self.wandb.Image(_picture(image)), int(step))

    def add_histogram(self, tag: str, values: Tensor, step: int) -> None:
        array = values.detach().float().reshape(-1).to("cpu").numpy()
        self._add(tag, self.wandb.Histogram(array), int(step))

    def add_text(self, tag: str, text: str, step: int) -> None:
        pass  # the hyper-parameters are the run's config

    def add_hparams(
        self, hparams: Mapping[str, Any], metrics: Mapping[str, float], **_: Any
    ) -> None:
        self.flush()
        self.run.summary.update({k.removeprefix("hparam/"): v for k, v in metrics.items()})

    def flush(self) -> None:
        if self.pending:
            self.run.log(self.pending)
            self.pending = {}

    def close(self, exit_code: int = 0) -> None:
        self.flush()
        self.run.finish(exit_code=exit_code)


class WandbLogger(TensorBoardLogger):
    """Log a run to Weights & Biases: scalars, image grids, histograms and the run config.

    The scalars are TensorBoard's (``train/*`` against ``train_step``, the optimizer
    steps; ``epoch/*`` and ``latent/*`` against ``epoch_step``); the reconstruction and
    sample grids are ``wandb.Image``, the posterior statistics ``wandb.Histogram``; the
    hyper-parameters (and ``hparams``) are the run's config and the final metrics its
    summary. ``mode="offline"`` writes the run under ``dir`` alone, to upload later with
    ``wandb sync``.

    Args:
        project: the W&B project.
        name: the run's display name.
        dir: the folder W&B writes in (default: W&B's, ``WANDB_DIR`` or the cwd).
        mode: ``"online"``, ``"offline"`` or ``"disabled"`` (default: W&B's own).
        run_id: an existing run to continue (for example after a resume).
        n_images: how many inputs and samples to show.
        seed: seed of the fixed samples and of the diagnostics' sampling.
        hparams: extra hyper-parameters to record (the data set, ...).
        diagnostics: examples the latent diagnostics use each epoch; 0 turns them off.
        **init: further arguments of ``wandb.init`` (``entity``, ``tags``, ``group``, ...).

    Raises:
        ImportError: when training starts, if wandb is not installed (``pip install
            torchvae[trackers]``).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        run_id: str | None = None,
        n_images: int = 16,
        seed: int = 0,
        hparams: Mapping[str, Any] | None = None,
        diagnostics: int = 1000,
        **init: Any,
    ) -> None:
        super().__init__(dir or ".", n_images, seed, hparams, diagnostics)
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"mode must be 'online', 'offline' or 'disabled', got {mode!r}")
        self.project, self.name, self.mode, self.run_id = project, name, mode, run_id
        self.dir = None if dir is None else Path(dir)
        self.init = init
        self.run: Any = None

    def _open(self, trainer: TrainerView) -> Any:
        wandb = require("wandb", "trackers", "WandbLogger")
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project,
            name=self.name,
            dir=None if self.dir is None else str(self.dir),
            mode=self.mode,
            id=self.run_id,
            resume="allow" if self.run_id is not None else None,
            config=self._hparams(trainer),
            reinit="create_new",
            **self.init,
        )
        self.run_id = self.run.id
        return _WandbWriter(wandb, self.run)

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close(exit_code=1)
            self.writer = None
