"""Training checkpoints: safe to load, written atomically, with every random state.

A checkpoint is a ``dict`` of tensors and plain Python values (no pickled classes or
code), saved with :func:`torch.save` through :func:`~torchvae._io.atomic_write` and read
back with ``torch.load(weights_only=True)``: loading a file from someone else cannot run
code. :class:`~torchvae.trainer.Trainer` fills it with the model, loss, optimizer,
scheduler and grad-scaler states, the epoch and step counters, the callbacks' states and
the random states below, which is what makes a resumed run continue bit for bit.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, cast

import torch

from ._io import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "find_last_checkpoint",
    "get_rng_state",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT_VERSION = 1
_MAGIC = "torchvae-checkpoint"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used: truncated, corrupted, or not a torchvae checkpoint."""


def get_rng_state() -> dict[str, Any]:
    """Every global random state, as tensors and plain values (``weights_only``-safe).

    Covers torch's CPU generator, every CUDA device's generator, Python's :mod:`random`
    and NumPy's legacy global generator when NumPy is installed.

    Returns:
        A dict to give back to :func:`set_rng_state`.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
    except ImportError:
        return state
    kind, keys, pos, has_gauss, cached = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state["numpy"] = [str(kind), torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the random states saved by :func:`get_rng_state`.

    Args:
        state: what :func:`get_rng_state` returned (possibly through a checkpoint).
    """
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:
            return
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint atomically: the previous file at ``path`` survives any failure.

    Args:
        state: tensors and plain Python values only (so that it loads with
            ``weights_only=True``).
        path: the file to write; its folder must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the file cannot be written (the message names it).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
        >>> _ = save_checkpoint({"epoch": 3, "w": torch.ones(2)}, path)
        >>> load_checkpoint(path)["epoch"]
        3
    """
    path = Path(path)
    with atomic_write(path) as f:
        torch.save({"format": _MAGIC, "format_version": FORMAT_VERSION, **state}, f)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, without running any code.

    Args:
        path: the file.
        map_location: where to put the tensors (``"cpu"`` by default).

    Returns:
        The saved dict (with ``format`` and ``format_version`` entries).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated or corrupted, holds objects that cannot be
            loaded safely, is not a torchvae checkpoint, or has a newer format version;
            the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r} ({path.stat().st_size} bytes): the file is "
            f"truncated or corrupted, or holds objects that cannot be loaded safely "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if not isinstance(state, dict) or state.get("format") != _MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a torchvae checkpoint")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {version!r}; this torchvae reads "
            f"versions up to {FORMAT_VERSION} (upgrade torchvae)"
        )
    return state


def find_last_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The ``epoch-NNNN.pt`` file with the highest epoch in ``folder``, or ``None``.

    Args:
        folder: a directory written by :class:`~torchvae.callbacks.ModelCheckpoint`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return max(found)[1] if found else None


def resolve_checkpoint(
    resume: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None
) -> Path:
    """The file ``resume`` names: a checkpoint file, a folder of them, or ``"last"``.

    Args:
        resume: a path, or ``"last"`` for the newest checkpoint in ``folder``.
        folder: where :class:`~torchvae.callbacks.ModelCheckpoint` writes, for ``"last"``.

    Raises:
        ValueError: ``"last"`` without a ``folder``.
        FileNotFoundError: a folder that holds no ``epoch-*.pt`` checkpoint.
    """
    if str(resume) == "last":
        if folder is None:
            raise ValueError("resume='last' needs a ModelCheckpoint callback to know where to look")
        path = Path(folder)
    else:
        path = Path(resume)
        if not path.is_dir():
            return path
    found = find_last_checkpoint(path)
    if found is None:
        raise FileNotFoundError(
            f"resume={str(resume)!r}: no epoch-*.pt checkpoint in {str(path)!r}"
        )
    return found
