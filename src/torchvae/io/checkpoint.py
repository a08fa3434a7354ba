"""Training checkpoints: safe to load, written atomically, checksummed, with every random state.

A checkpoint is a ``dict`` of tensors and plain Python values (no pickled classes or
code), saved with :func:`torch.save` through :func:`~torchvae.io._atomic.atomic_write` and read
back with ``torch.load(weights_only=True)``: loading a file from someone else cannot run
code. :class:`~torchvae.Trainer` fills it with the model, loss, optimizer,
scheduler and grad-scaler states, the epoch and step counters, the callbacks' states and
the random states below, which is what makes a resumed run continue bit for bit.

**Integrity.** Since format version 2 a checkpoint carries a SHA-256 digest of its whole
content (every key and plain value, and every tensor's dtype, shape and bytes), checked
on load: the zip container ``torch.save`` writes does not notice a flipped bit inside a
tensor, so without the digest a damaged file would load with silently changed weights or
optimizer state. A mismatch raises :class:`CheckpointError` naming the file and the newest
checkpoint beside it that does verify. Like the model files' digest, it detects
corruption, not tampering. Version 1 files (no digest) still load, unchecked.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from pathlib import Path
from typing import Any, cast

import torch

from ._atomic import atomic_write, check_file

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

FORMAT_VERSION = 2
"""The version this torchvae writes (2: with a SHA-256 digest); it reads versions 1 and 2."""
_MAGIC = "torchvae-checkpoint"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
_DIGEST_KEY = "sha256"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used: truncated, corrupted, or not a torchvae checkpoint.

    Attributes:
        path: the file, when known.
        last_good: the newest checkpoint beside it that loads and verifies, if any (for a
            damaged file).
        recognized: whether the file was recognised as a torchvae checkpoint (its format
            marker was read) before the problem was found.
    """

    def __init__(
        self,
        message: str,
        path: Path | None = None,
        last_good: Path | None = None,
        recognized: bool = False,
    ) -> None:
        super().__init__(message)
        self.path, self.last_good, self.recognized = path, last_good, recognized


def _update(digest: Any, value: object) -> None:
    """Feed ``value`` (nested dicts, lists, tensors, plain values) into ``digest``.

    Iterative, so that no nesting depth overflows the stack; every item is tagged with its
    type and every container with its length, so that different contents never give the
    same byte stream.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            t = item.detach()
            digest.update(f"T{t.dtype}{tuple(t.shape)};".encode())
            if not t.is_meta and t.numel():
                flat = t.to("cpu").contiguous().reshape(-1)
                digest.update(flat.view(torch.uint8).numpy().data)
        elif isinstance(item, dict):
            digest.update(f"D{len(item)};".encode())
            for key, entry in reversed(list(item.items())):
                stack += [entry, key]
        elif isinstance(item, (list, tuple)):
            digest.update(f"{'L' if isinstance(item, list) else 'U'}{len(item)};".encode())
            stack += reversed(item)
        elif isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            digest.update(f"S{len(data)};".encode() + data)
        elif isinstance(item, (bytes, bytearray)):
            digest.update(f"B{len(item)};".encode() + bytes(item))
        else:  # None, bool, int, float, complex, torch.dtype, torch.device, ...
            text = f"{type(item).__qualname__}:{item!r}".encode()
            digest.update(f"R{len(text)};".encode() + text)


def _digest(state: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    _update(digest, {k: v for k, v in state.items() if k != _DIGEST_KEY})
    return digest.hexdigest()


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

    The file carries a SHA-256 digest of ``state`` (under the reserved key ``"sha256"``),
    which :func:`load_checkpoint` checks.

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
    payload = {"format": _MAGIC, "format_version": FORMAT_VERSION, **state}
    payload[_DIGEST_KEY] = _digest(payload)
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def _siblings(path: Path) -> list[Path]:
    """The other checkpoints in ``path``'s folder, newest first (``best.pt`` last)."""
    try:
        found = [
            (int(m.group(1)), p)
            for p in path.parent.iterdir()
            if (m := _EPOCH_FILE.match(p.name)) and p.name != path.name
        ]
    except OSError:
        return []
    others = [p for _, p in sorted(found, reverse=True)]
    best = path.parent / "best.pt"
    return others + ([best] if path.name != best.name and best.is_file() else [])


def _newest_good(path: Path, map_location: str | torch.device | None) -> Path | None:
    for candidate in _siblings(path):
        try:
            _load(candidate, map_location)
        except (CheckpointError, OSError):
            continue
        return candidate
    return None


def _damaged(error: CheckpointError, map_location: str | torch.device | None) -> CheckpointError:
    """``error`` with the newest good checkpoint beside the damaged file named."""
    assert error.path is not None
    good = _newest_good(error.path, map_location)
    where = (
        f"the newest good checkpoint beside it is {str(good)!r}"
        if good is not None
        else "no good checkpoint is beside it"
    )
    return CheckpointError(f"{error}; {where}", error.path, good, error.recognized)


def _load(path: Path, map_location: str | torch.device | None) -> dict[str, Any]:
    """Read and check one file; raise CheckpointError without naming other files."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r} ({path.stat().st_size} bytes): the file is "
            f"truncated or corrupted, or holds objects that cannot be loaded safely "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            path,
        ) from e
    if not isinstance(state, dict) or state.get("format") != _MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a torchvae checkpoint", path)
    version = state.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its format version is {version!r}",
            path,
            recognized=True,
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {version!r}; this torchvae reads "
            f"versions up to {FORMAT_VERSION} (upgrade torchvae)",
            path,
            recognized=True,
        )
    if version >= 2:
        stored = state.pop(_DIGEST_KEY, None)
        try:
            actual = _digest(state)
        except Exception as e:  # a damaged file can hold values of unexpected kinds
            actual = f"unreadable ({type(e).__name__})"
        if stored != actual:
            problem = (
                "holds no SHA-256 checksum"
                if stored is None
                else "does not match the SHA-256 checksum stored when it was written"
            )
            raise CheckpointError(
                f"checkpoint {str(path)!r} is corrupted: its content {problem}",
                path,
                recognized=True,
            )
    return state


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
        FileNotFoundError: ``path`` does not exist (or is a symbolic link to nowhere).
        IsADirectoryError: ``path`` is a folder (:func:`resolve_checkpoint` finds the
            newest checkpoint in one).
        OSError: ``path`` is a loop of symbolic links or cannot be examined.
        CheckpointError: the file is truncated or corrupted (its content does not match
            its SHA-256 checksum), holds objects that cannot be loaded safely, is not a
            torchvae checkpoint, or has a newer format version; the message names the
            file and, for a damaged one, the newest checkpoint beside it that verifies
            (also in the error's ``last_good``).
    """
    try:
        path = check_file(path, "checkpoint")
    except IsADirectoryError as e:
        raise IsADirectoryError(
            f"{e}: pass one of its epoch-NNNN.pt files (resolve_checkpoint(folder), or "
            f"resume='last' in Trainer.fit, finds the newest)"
        ) from None
    try:
        return _load(path, map_location)
    except CheckpointError as e:
        if "truncated or corrupted" not in str(e) and "is corrupted" not in str(e):
            raise
        raise _damaged(e, map_location) from e.__cause__


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
