"""Progress: a tqdm bar on a terminal (rate, ETA, the live loss), one line per epoch elsewhere."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

from .._validation import check_positive_int
from ._base import Callback, StepOutput, TrainerView

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """A tqdm bar on a terminal; one summary line per epoch otherwise (logs, CI).

    On a terminal each epoch has a bar with the batches done, their rate, the time left and
    the live loss, replaced at the epoch's end by its summary line; elsewhere (a file, a
    pipe) only the summary lines are written, so logs stay one line per epoch.

    Args:
        stream: where to write; default ``sys.stdout``.
        refresh_every: steps between updates of the shown loss (each reads the loss, a
            synchronization on a GPU); the bar itself moves every step.
    """

    def __init__(self, stream: IO[str] | None = None, refresh_every: int = 20) -> None:
        self.stream = stream
        self.refresh_every = check_positive_int(refresh_every, "refresh_every")
        self._start, self._batch = 0.0, 0
        self._bar: Any = None

    @property
    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def _live(self) -> bool:
        return bool(getattr(self._out, "isatty", lambda: False)())

    def on_train_epoch_start(self, trainer: TrainerView) -> None:
        self._start, self._batch = time.perf_counter(), 0
        if self._live and trainer.is_global_zero:
            self._bar = tqdm(
                total=trainer.num_batches,
                desc=f"epoch {trainer.epoch + 1}",
                unit="batch",
                file=self._out,
                leave=False,
                dynamic_ncols=True,
            )

    def on_train_batch_end(self, trainer: TrainerView, output: StepOutput) -> None:
        self._batch += 1
        if self._bar is None:
            return
        if self._batch % self.refresh_every == 0:
            self._bar.set_postfix(loss=f"{output.losses.total.item():.4g}", refresh=False)
        self._bar.update(1)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()  # the epoch's last state, then the summary line over it
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        self._close()

    def on_train_epoch_end(self, trainer: TrainerView) -> None:
        self._close()
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
        self._out.write("  ".join(parts) + "\n")
        self._out.flush()
