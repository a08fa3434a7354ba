"""Checkpoints every few epochs, and of the best epoch."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .._validation import check_positive_int
from ..io._atomic import check_writable, remove_stray_temps
from ..io.checkpoint import save_checkpoint
from ._base import Callback, TrainerView, check_mode, is_better, monitored

__all__ = ["ModelCheckpoint"]


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
        self.save_best, self.monitor, self.mode = save_best, monitor, check_mode(mode)
        self.best_score: float | None = None
        self.best_path: str | None = None
        self.saved: list[str] = []

    def on_fit_start(self, trainer: TrainerView) -> None:
        if trainer.is_global_zero:
            check_writable(self.dirpath, "checkpoint directory")
            remove_stray_temps(self.dirpath, _CHECKPOINT_NAMES)  # left by a killed run
        if self.monitor is None:
            self.monitor = "val_loss" if trainer.val is not None else "loss"

    def on_train_epoch_end(self, trainer: TrainerView) -> None:
        if not trainer.is_global_zero:
            return
        periodic = trainer.epoch % self.every_n_epochs == 0
        better = False
        if self.save_best:
            assert self.monitor is not None
            score = monitored(trainer, self.monitor, "ModelCheckpoint")
            better = is_better(score, self.best_score, self.mode)
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
