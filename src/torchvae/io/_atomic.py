"""Atomic file writes: a file is either the old one or the whole new one, never half.

A write goes to a temporary file in the destination's folder, is flushed and fsync'ed,
and then renamed over the destination with :func:`os.replace` (atomic on POSIX and on
Windows within one volume). Killed mid-write, a process leaves the previous file intact
and at worst a stray ``.<name>.*.tmp`` beside it, which :func:`remove_stray_temps` clears
at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_file", "check_writable", "remove_stray_temps"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing so that it appears only once fully written.

    Args:
        path: the destination; its folder must exist.

    Yields:
        A binary file object open on a temporary file beside ``path``.

    Raises:
        OSError: the folder is missing or unwritable, or the disk is full; the message
            names ``path`` and the previous file, if any, is left unchanged.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_write(folder / "a.bin") as f:
        ...     _ = f.write(b"hello")
        >>> (folder / "a.bin").read_bytes()
        b'hello'
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {target}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and str(target) not in str(e):
            raise OSError(e.errno, f"cannot write {target}: {e.strerror or e}") from e
        raise


# What atomic_write's mkstemp names look like: "." + target name + "." + 8 random chars.
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def remove_stray_temps(
    folder: str | os.PathLike[str], names: re.Pattern[str] | None = None
) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``folder``.

    Only files named as :func:`atomic_write` names them are touched, and with ``names``
    only those whose destination's name matches it. Call it when no other process can be
    writing into ``folder`` (at the start of a run that owns it).

    Args:
        folder: the directory; nothing happens if it does not exist.
        names: a pattern the destination's name must match in full (e.g. checkpoints').

    Returns:
        The files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        m = _TEMP.match(path.name)
        if m is None or (names is not None and not names.fullmatch(m["name"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed


def check_writable(folder: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Create ``folder`` if needed and check a file can be written there.

    Called before training starts, so that an unwritable directory fails at once instead
    of after the first epoch.

    Args:
        folder: the directory.
        what: how to name it in the error message.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: naming ``folder`` and the reason (permission, read-only, full disk).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / ".torchvae-write-test") as f:
            f.write(b"ok")
        (folder / ".torchvae-write-test").unlink()
    except OSError as e:
        raise OSError(e.errno, f"{what} {str(folder)!r} is not writable: {e.strerror or e}") from e
    return folder


def check_file(path: str | os.PathLike[str], what: str) -> Path:
    """Check that ``path`` is a file that can be opened, saying why when it is not.

    ``Path.exists`` is ``False`` for a loop of symbolic links and for a link to nowhere,
    which would read as "does not exist"; this names those cases.

    Args:
        path: the file.
        what: how to name it in messages (``"checkpoint"``, ``"model file"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: nothing is at ``path``, or it is a symbolic link to nowhere.
        IsADirectoryError: ``path`` is a folder.
        OSError: ``path`` is a loop of symbolic links, or cannot be examined (the message
            says why).
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise FileNotFoundError(
                f"{what} {str(path)!r} is a symbolic link to {os.readlink(path)!r}, "
                f"which does not exist"
            ) from None
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(
                errno.ELOOP,
                f"{what} {str(path)!r} is a loop of symbolic links (following them leads "
                f"back to a link, never to a file): point the link at the real file",
            ) from None
        raise OSError(e.errno, f"cannot open {what} {str(path)!r}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder, not a file")
    return path
