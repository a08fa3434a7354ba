r"""CIFAR-10 from its official binary release, found on disk, checked, held in memory.

The binary version (``cifar-10-binary.tar.gz``, "suitable for C programs") holds six files
in ``cifar-10-batches-bin/``: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (training) and
``test_batch.bin``, each 10000 records of one label byte (0..9) and 3072 pixel bytes (the
red, green and blue 32x32 planes, rows in order), and ``batches.meta.txt`` (the ten class
names, one a line). The pickled Python version is not read: unpickling runs code.

Where the files are looked for, in order, in each of ``root`` (when given), the folder named
by ``TORCHVAE_DATA_DIR``, and ``./data`` (the root of torchvision's examples): the
torchvision layout ``FOLDER/cifar-10-batches-bin/``, then ``FOLDER`` itself (a flat folder),
then the archive ``FOLDER/cifar-10-binary.tar.gz``, read as it is, without extracting.
Nothing is downloaded; the error says where it looked and where to get the archive.

Checksum policy (``verify=True``, the default), as for MNIST: a batch file of the official
length (30,730,000 bytes) is checked against the MD5 of the official one, and an archive of
the official length (170,052,171 bytes) against the archive's; files of another length
cannot be the official ones and are used as given (a subset, or the small fake files of
tests) after the structural checks every file gets. The archive's MD5 is the one the
dataset's page gives (https://www.cs.toronto.edu/~kriz/cifar.html); those of the six batch
files, which the page does not list, are the ones pytorch-cpp checks
(``cmake/fetch_cifar10.cmake`` in prabhuomkar/pytorch-cpp).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import torch
from torch import Tensor

from ._idx import ENV_VAR, ChecksumError, DatasetNotFoundError

__all__ = ["CIFAR10_CLASSES", "CIFARFormatError", "load_cifar10"]

#: The class names in label order, as ``batches.meta.txt`` gives them.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
ARCHIVE_BYTES = 170_052_171
FOLDER = "cifar-10-batches-bin"
META = "batches.meta.txt"
FILES = {
    True: tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    False: ("test_batch.bin",),
}
BATCH_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
RECORD_BYTES = 1 + 3 * 32 * 32
BATCH_BYTES = 10_000 * RECORD_BYTES
_DEFAULT_DIR = Path("data")


class CIFARFormatError(ValueError):
    """A CIFAR-10 binary file is malformed: a length that is not whole records, a label
    outside 0..9, an unreadable archive (the message names the file)."""


def load_cifar10(
    root: str | os.PathLike[str] | None = None, train: bool = True, verify: bool = True
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """Load one split of CIFAR-10 (the binary release) as in-memory tensors.

    Args:
        root: A folder to search first (see the module notes for the search order).
        train: The 50000 training images (``True``) or the 10000 test images.
        verify: Check official-length files against their MD5 checksums.

    Returns:
        ``(images, labels, classes)``: ``uint8`` of shape ``(N, 3, 32, 32)``, ``int64`` of
        shape ``(N,)`` and the ten class names.

    Raises:
        DatasetNotFoundError: The files are nowhere; the message says where it looked and
            how to provide them.
        CIFARFormatError: A file is malformed (the message names it).
        ChecksumError: An official-length file has the wrong checksum.

    Example:
        >>> images, labels, classes = load_cifar10(train=False)  # doctest: +SKIP
        >>> tuple(images.shape), classes[labels[0]]  # doctest: +SKIP
        ((10000, 3, 32, 32), 'cat')
    """
    places = _places(root)
    for place in places:
        found = _read_place(place, train, verify)
        if found is not None:
            blobs, meta = found
            parts = [_parse(name, blob) for name, blob in blobs]
            images = torch.cat([p[0] for p in parts])
            labels = torch.cat([p[1] for p in parts])
            return images, labels, _classes(meta, place)
    raise DatasetNotFoundError(_not_found(train, places))


def _places(root: str | os.PathLike[str] | None) -> list[Path]:
    bases = [Path(root)] if root is not None else []
    if os.environ.get(ENV_VAR):
        bases.append(Path(os.environ[ENV_VAR]))
    bases.append(_DEFAULT_DIR)
    places = [p for base in bases for p in (base / FOLDER, base, base / ARCHIVE)]
    return list(dict.fromkeys(places))


def _read_place(
    place: Path, train: bool, verify: bool
) -> tuple[list[tuple[str, bytes]], bytes | None] | None:
    """The split's files (name, content) and ``batches.meta.txt`` from a folder or archive."""
    if place.name == ARCHIVE:
        return _read_archive(place, train, verify) if place.is_file() else None
    if not all((place / name).is_file() for name in FILES[train]):
        return None
    blobs = [_verified(str(place / n), n, (place / n).read_bytes(), verify) for n in FILES[train]]
    meta = place / META
    return blobs, meta.read_bytes() if meta.is_file() else None


def _verified(path: str, name: str, data: bytes, verify: bool) -> tuple[str, bytes]:
    """``(path, data)``, once ``data`` is checked if it has the official length."""
    if verify and len(data) == BATCH_BYTES:
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if got != BATCH_MD5[name]:
            raise ChecksumError(
                f"{path}: checksum mismatch for CIFAR-10 {name}: expected md5 "
                f"{BATCH_MD5[name]}, got {got}; the file is corrupt or not the official "
                "one. Fetch the archive again, or pass verify=False to use it as it is."
            )
    return path, data


def _read_archive(
    path: Path, train: bool, verify: bool
) -> tuple[list[tuple[str, bytes]], bytes | None] | None:
    if verify and path.stat().st_size == ARCHIVE_BYTES:
        md5 = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
        if md5.hexdigest() != ARCHIVE_MD5:
            raise ChecksumError(
                f"{path}: checksum mismatch for {ARCHIVE}: expected md5 {ARCHIVE_MD5}, got "
                f"{md5.hexdigest()}; the download is corrupt. Fetch {URL} again, or pass "
                "verify=False to use it as it is."
            )
    wanted = {*FILES[train], META}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in found:
                    stream = archive.extractfile(member)
                    if stream is not None:
                        found[name] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CIFARFormatError(f"{path}: not a readable tar archive ({exc})") from exc
    if not all(name in found for name in FILES[train]):
        return None
    blobs = [_verified(f"{path}:{n}", n, found[n], verify) for n in FILES[train]]
    return blobs, found.get(META)


def _parse(name: str, data: bytes) -> tuple[Tensor, Tensor]:
    if not data or len(data) % RECORD_BYTES:
        raise CIFARFormatError(
            f"{name}: a CIFAR-10 binary batch is whole records of {RECORD_BYTES} bytes "
            f"(1 label + 3072 pixels), but it holds {len(data)} bytes"
            + (" (is it the pickled Python version?)" if data[:1] == b"\x80" else "")
        )
    records = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, RECORD_BYTES)
    labels = records[:, 0].to(torch.int64)
    if int(labels.max()) > 9:
        raise CIFARFormatError(
            f"{name}: labels must lie in 0..9, got {int(labels.max())} "
            f"(record {int(labels.argmax())})"
        )
    return records[:, 1:].reshape(-1, 3, 32, 32).clone(), labels


def _classes(meta: bytes | None, place: Path) -> tuple[str, ...]:
    if meta is None:
        return CIFAR10_CLASSES
    names = tuple(line.strip() for line in meta.decode("utf-8", "replace").splitlines())
    names = tuple(n for n in names if n)
    if len(names) != 10:
        raise CIFARFormatError(
            f"{place}: {META} must name the 10 classes, one a line, got {len(names)} names"
        )
    return names


def _not_found(train: bool, places: list[Path]) -> str:
    needed = ", ".join(FILES[train])
    lines = [
        f"Could not find the CIFAR-10 {'training' if train else 'test'} files ({needed}).",
        "Looked in:",
    ]
    for place in places:
        have = [] if place.name == ARCHIVE else [n for n in FILES[train] if (place / n).is_file()]
        lines.append(f"  - {place.absolute()}" + (f" (has only {', '.join(have)})" if have else ""))
    pickled = [p.parent / "cifar-10-batches-py" for p in places if p.name == FOLDER]
    lines += [
        f"  (found {p.absolute()}: the pickled Python version, which torchvae does not read "
        "because unpickling runs code; get the binary version)"
        for p in pickled
        if p.is_dir()
    ]
    lines += [
        "CIFAR-10's binary version is six files, data_batch_1.bin .. data_batch_5.bin and "
        f"test_batch.bin, in the archive {ARCHIVE}.",
        "Provide them in one of these ways:",
        f"  - download {URL} (162 MB, md5 {ARCHIVE_MD5}) and put it in a folder FOLDER, as it "
        f"is or extracted (tar xzf {ARCHIVE} -C FOLDER gives FOLDER/{FOLDER}/);",
        f"  - then pass root=FOLDER, or set the environment variable {ENV_VAR}=FOLDER, or use "
        f"./{_DEFAULT_DIR} as FOLDER.",
    ]
    return "\n".join(lines)
