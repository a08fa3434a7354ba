"""What goes wrong in training, and what the loop says when it does.

Non-finite losses, gradients and weights; bad batches (values outside the likelihood's
support, labels out of range); a full disk. Every message names where it happened (epoch,
batch, step) and the last good checkpoint.
"""

from __future__ import annotations

import errno
import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from .._validation import check_finite, check_positive_int
from ..likelihoods import Likelihood
from ..models._labels import check_labels

__all__ = [
    "NonFiniteLossError",
    "SkipPolicy",
    "check_batch",
    "check_disk_space",
    "last_good",
    "weights_finite",
    "where",
    "write_failed",
]

NanPolicy = Literal["raise", "skip"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or inf during training."""


def weights_finite(params: list[Tensor]) -> bool:
    """Whether every parameter is finite (one reduction, one synchronisation)."""
    return bool(torch.isfinite(nn.utils.get_total_norm(params, norm_type=math.inf)))


def where(epoch: int, epochs: int, batch_idx: int, step: int) -> str:
    """``epoch E of N, batch B (step S overall)``, for the step about to be taken."""
    return f"epoch {epoch + 1} of {epochs}, batch {batch_idx + 1} (step {step + 1} overall)"


def last_good(path: Path | None) -> str:
    """Where the newest checkpoint is, or that there is none."""
    if path is not None:
        return f"the last good checkpoint is {str(path)!r}"
    return "no checkpoint was written (add a ModelCheckpoint callback to keep one)"


class SkipPolicy:
    """``nan_policy`` and the count of skipped steps.

    Args:
        nan_policy: ``"raise"`` or ``"skip"``.
        max_consecutive_skips: with ``"skip"``, stop after this many skipped steps in a row.
    """

    def __init__(self, nan_policy: object, max_consecutive_skips: object) -> None:
        if nan_policy not in ("raise", "skip"):
            raise ValueError(f"nan_policy must be one of ('raise', 'skip'), got {nan_policy!r}")
        self.nan_policy: NanPolicy = nan_policy
        self.limit = (
            None
            if max_consecutive_skips is None
            else check_positive_int(max_consecutive_skips, "max_consecutive_skips")
        )
        self.skipped = 0  # in the whole run (saved in checkpoints)
        self.run = 0  # in a row

    def passed(self) -> None:
        """A step was taken."""
        self.run = 0

    def non_finite(self, total: Tensor, grad_norm: Tensor, at: str, last: str) -> None:
        """A step had a NaN/inf loss or gradient: count it, or raise.

        Raises:
            NonFiniteLossError: ``nan_policy="raise"``, or too many skips in a row.
        """
        what = f"loss {total.item()}, gradient norm {grad_norm.item()}"
        if self.nan_policy == "raise":
            raise NonFiniteLossError(
                f"non-finite training values ({what}) at {at}; {last}. Lower the learning "
                f"rate, set grad_clip=, check the data, or pass nan_policy='skip'"
            )
        self.skipped += 1
        self.run += 1
        if self.limit is not None and self.run >= self.limit:
            raise NonFiniteLossError(
                f"{self.run} steps in a row were skipped for non-finite values "
                f"(max_consecutive_skips={self.limit}), the last at {at} ({what}); {last}. "
                f"Lower the learning rate, set grad_clip=, or check the data"
            )


def check_batch(
    x: Tensor,
    y: Tensor | None,
    likelihood: Likelihood | None,
    num_classes: int | None,
    at: str,
) -> None:
    """Name bad data (NaN, values outside the likelihood's support, labels out of range).

    Raises:
        ValueError: naming the problem and ``at``.
    """
    try:
        if likelihood is not None:
            likelihood.validate_target(x, "batch x")
        else:
            check_finite(x, "batch x")
        if num_classes is not None and isinstance(y, Tensor):
            check_labels(y, y.shape[0], y.device, num_classes, "batch y")
    except ValueError as e:
        raise ValueError(f"{e} (at {at})") from None


def write_failed(e: OSError, step: int, epochs_done: int, last: str) -> OSError:
    """A file could not be written mid-run: say what is safe, and where."""
    return OSError(
        e.errno,
        f"{e.strerror or e} (after step {step}, {epochs_done} epochs done). "
        f"Training stopped; the model, optimizer and all other state in memory are "
        f"intact: keep them with torchvae.save_checkpoint(trainer.state_dict(), path) on "
        f"another disk, or free space and resume; {last}",
        e.filename,
    )


def _nbytes(tensors: Iterable[object]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))


def check_disk_space(
    modules: Iterable[nn.Module],
    optimizers: Iterable[torch.optim.Optimizer],
    folders: Iterable[Path],
) -> None:
    """Refuse to start when a checkpoint folder cannot hold one checkpoint.

    Raises:
        OSError: ``ENOSPC``, naming the folder, its free space and what a checkpoint needs.
    """
    weights = sum(_nbytes(m.state_dict().values()) for m in modules)
    moments = sum(_nbytes(state.values()) for opt in optimizers for state in opt.state.values())
    need = weights + (moments or 2 * weights)  # before the first step: Adam's two moments
    for folder in folders:
        if folder.is_dir():
            free = shutil.disk_usage(folder).free
            if free < need:
                raise OSError(
                    errno.ENOSPC,
                    f"checkpoint directory {str(folder)!r} has {free / 2**20:.1f} MiB "
                    f"free, but one checkpoint needs about {need / 2**20:.1f} MiB (weights "
                    f"and optimizer state); free space or choose another directory",
                )
