"""Progress on a terminal, one line per epoch elsewhere."""

from __future__ import annotations

import shutil
import sys
import time
from typing import IO

from .._validation import check_positive_int
from ._base import Callback, StepOutput, TrainerView

__all__ = ["ProgressBar"]


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

    def on_train_epoch_start(self, trainer: TrainerView) -> None:
        self._start, self._batch = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: TrainerView, output: StepOutput) -> None:
        self._batch += 1
        if self._batch % self.refresh_every or not self._live or not trainer.is_global_zero:
            return
        total = f"/{trainer.num_batches}" if trainer.num_batches else ""
        loss = output.losses.total.item()
        line = f"epoch {trainer.epoch + 1}  {self._batch}{total}  loss {loss:.4g}"
        width = shutil.get_terminal_size().columns - 1
        self._out.write("\r" + line[:width].ljust(width))
        self._out.flush()

    def on_train_epoch_end(self, trainer: TrainerView) -> None:
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
