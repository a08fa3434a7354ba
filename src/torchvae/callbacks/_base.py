"""The callback interface: the hooks, the base class, and the view of the trainer they get."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

__all__ = ["HOOKS", "Callback", "StepOutput", "TrainerView", "check_mode", "is_better", "monitored"]

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


class StepOutput(NamedTuple):
    """What a training step hands to ``on_train_batch_end``.

    Attributes:
        losses: the loss's :class:`~torchvae.LossOutput`, still attached to the graph;
            read values with ``.item()`` only when needed (each synchronizes a GPU).
        x: the batch, on the training device.
        y: its labels, or ``None``.
        grad_norm: the total gradient 2-norm, before clipping.
        skipped: the step was skipped for a non-finite loss (``nan_policy="skip"``).
    """

    losses: Any
    x: Tensor
    y: Tensor | None
    grad_norm: Tensor
    skipped: bool


class TrainerView(Protocol):
    """What a callback may read (and, for ``should_stop``, set) of the trainer calling it.

    The :class:`~torchvae.Trainer` is one; callbacks know it only through this.
    """

    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epoch: int
    global_step: int
    metrics: dict[str, float]
    should_stop: bool
    val: Any
    num_batches: int | None
    log_every_n_steps: int
    batch_size: int
    grad_clip: float | None
    precision: str
    seed: int | None
    last_checkpoint: Path | None
    conditional: bool

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files."""
        ...

    def forward(self, x: Tensor, y: Tensor | None = None) -> Any:
        """Call the model as the trainer does."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs."""
        ...


class Callback:
    """Base class: override the hooks you need; the others cost nothing.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_train_epoch_end(self, trainer):
        ...         print(f"epoch {trainer.epoch}: {trainer.metrics['loss']:.1f}")
    """

    def on_fit_start(self, trainer: TrainerView) -> None:
        """Before the first epoch (after a resume has restored the state)."""

    def on_train_epoch_start(self, trainer: TrainerView) -> None:
        """Before each epoch; ``trainer.epoch`` is the number of epochs done."""

    def on_train_batch_start(self, trainer: TrainerView, x: Tensor) -> None:
        """Before each training step, with the batch on the device."""

    def on_train_batch_end(self, trainer: TrainerView, output: StepOutput) -> None:
        """After each training step; ``trainer.global_step`` counts steps done."""

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        """After validation, with its metrics (``val_loss``, ...)."""

    def on_train_epoch_end(self, trainer: TrainerView) -> None:
        """After each epoch (and validation); ``trainer.metrics`` holds its metrics."""

    def on_fit_end(self, trainer: TrainerView) -> None:
        """After the last epoch."""

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        """When training stops with an exception (re-raised after the callbacks)."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def monitored(trainer: TrainerView, monitor: str, who: str) -> float:
    if monitor not in trainer.metrics:
        raise ValueError(
            f"{who}: monitor={monitor!r} is not among the epoch's metrics "
            f"{sorted(trainer.metrics)}"
            + ("; pass val= to fit" if monitor.startswith("val_") else "")
        )
    return float(trainer.metrics[monitor])
