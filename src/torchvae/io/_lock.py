"""An advisory lock on a run folder, so that two runs never write into one folder.

:func:`hold_folder` takes an exclusive :func:`fcntl.flock` on ``FOLDER/.torchvae.lock``
for as long as its ``with`` block runs, and writes the holder's process id into the file.
The operating system drops the lock when the process ends in any way (a crash, ``kill
-9``), so a lock never outlives its run; a second run asking for a held folder fails at
once with :class:`FolderInUseError`, naming the holder's pid. The lock is advisory: it
guards against other torchvae runs, not against other programs writing there. Where
``fcntl`` is missing (Windows), the folder is not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "FolderInUseError", "hold_folder"]

LOCK_NAME = ".torchvae.lock"


class FolderInUseError(RuntimeError):
    """Another live run holds the folder (the message names its process id)."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 64, 0).decode().strip()
        if text:
            return f"pid {int(text)}"
    return "pid not known yet: it is starting"


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike[str], what: str = "run folder") -> Iterator[Path]:
    """Hold ``folder`` for the duration of the block (creating it if needed).

    Args:
        folder: the directory a run writes into.
        what: how to name it in the error message.

    Yields:
        The lock file's path.

    Raises:
        FolderInUseError: another process holds ``folder``.
        OSError: ``folder`` cannot be created or the lock file cannot be opened.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield path
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FolderInUseError(
                f"{what} {str(folder)!r} is in use by another torchvae run ({holder}); "
                f"wait for it to finish, or choose another folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # A holder that just finished unlinked the file it locked: lock a fresh one instead.
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held, so that no one locks the file being removed
        os.close(fd)
