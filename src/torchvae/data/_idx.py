"""The IDX files of MNIST and Fashion-MNIST: reading, checking, finding and downloading.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``0x08`` for
unsigned bytes; ``DD`` the number of dimensions), then ``DD`` big-endian ``uint32`` sizes,
then the elements in row-major order. Files may be gzip-compressed; compression is
recognised from the content, not from the name.

Official files are recognised by their length and checked against the MD5 of their
*decompressed* content, so a file is verified the same way whether it is the ``.gz`` the
mirrors serve, a re-compressed copy (Debian's) or torchvision's extracted one. A file of
another length cannot be the official one and is read as given (a subset, or the small fake
files tests write), after the structural checks that every file gets.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["ChecksumError", "DatasetNotFoundError", "IDXFormatError", "read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08

#: Length in bytes of each official (decompressed) file; the same for both datasets.
OFFICIAL_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}

#: MD5 of each official file's decompressed content, per dataset.
CONTENT_MD5: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "Fashion-MNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

#: MD5 of the ``.gz`` files as the mirrors serve them (torchvision's table), per dataset.
GZIP_MD5: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "Fashion-MNIST": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file of unsigned bytes (the message names it)."""


class ChecksumError(ValueError):
    """A file that claims to be an official one does not have its known MD5 checksum."""


# Deflate never compresses better than about 1032:1, so a gzip file of n bytes holds at
# most this many bytes per byte (plus a little) once decompressed.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 22


def _truncated(path: Path, n: int, what: str, got: int) -> IDXFormatError:
    return IDXFormatError(f"{path}: truncated IDX file: expected {n} bytes of {what}, got {got}")


def _read_exact(stream: io.BufferedIOBase, n: int, path: Path, what: str) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise _truncated(path, n, what, got)
        got += k
    return buf


def _read_growing(stream: io.BufferedIOBase, n: int, path: Path, what: str) -> bytearray:
    """Read ``n`` bytes in chunks: memory grows with the bytes that really arrive."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            raise _truncated(path, n, what, len(buf))
        buf += chunk
    return buf


class _Source:
    """What is known of a file's length before reading it: an exact one, or a bound."""

    def __init__(self, path: Path, compressed: bool) -> None:
        size = path.stat().st_size
        self.compressed = compressed
        # Raw: the exact length. Gzip: the largest length deflate can expand it to, and
        # the length its trailer records (modulo 2**32, for the last member only).
        self.limit = size * _MAX_DEFLATE_RATIO + 64 if compressed else size
        self.trailer: int | None = None
        if compressed and size >= 18:
            with path.open("rb") as f:
                f.seek(-4, os.SEEK_END)
                self.trailer = int.from_bytes(f.read(4), "little")

    def check(self, path: Path, shape: tuple[int, ...], header: int, count: int) -> bool:
        """Raise if the header claims more data than the file can hold; else whether the
        claim is confirmed (so the buffer can be allocated at once)."""
        total = header + count
        if total <= self.limit:
            return not self.compressed or self.trailer == total % 2**32
        if self.compressed:
            raise IDXFormatError(
                f"{path}: truncated or corrupt IDX file: the header gives shape {shape} "
                f"({count} bytes of data), but a gzip file of {path.stat().st_size} bytes "
                f"decompresses to at most {self.limit} bytes"
            )
        raise IDXFormatError(
            f"{path}: truncated IDX file: expected {count} bytes of data for shape {shape}, "
            f"got {max(self.limit - header, 0)} (the file is {self.limit} bytes)"
        )


def _parse(
    stream: io.BufferedIOBase, path: Path, md5: hashlib._Hash | None, source: _Source
) -> Tensor:
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise IDXFormatError(
            f"{path}: not an IDX file: the magic number must start with two zero bytes, "
            f"got {magic.hex() or 'an empty file'}"
        )
    if magic[2] != _UBYTE:
        raise IDXFormatError(
            f"{path}: only IDX files of unsigned bytes (type 0x08) are supported, "
            f"got type 0x{magic[2]:02x}"
        )
    ndim = magic[3]
    header = _read_exact(stream, 4 * ndim, path, f"header ({ndim} dimension sizes)")
    shape = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = 1
    for size in shape:
        count *= size
    what = f"data for shape {shape}"
    if source.check(path, shape, 4 + 4 * ndim, count):
        data = _read_exact(stream, count, path, what)
    else:
        data = _read_growing(stream, count, path, what)
    if stream.read(1):
        raise IDXFormatError(
            f"{path}: size mismatch: the header gives shape {shape} ({count} bytes of data) "
            "but the file holds more"
        )
    if md5 is not None:
        md5.update(magic)
        md5.update(header)
        md5.update(data)
    if count == 0:
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(data, dtype=torch.uint8).view(shape)


def read_idx(path: str | Path, md5: hashlib._Hash | None = None) -> Tensor:
    """Read one IDX file of unsigned bytes, gzip-compressed or not.

    Args:
        path: The file. Compression is detected from its first bytes, not its name.
        md5: If given, a ``hashlib.md5()`` object updated with the decompressed content.

    Returns:
        A ``uint8`` tensor of the shape the header gives, e.g. ``(60000, 28, 28)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IDXFormatError: The file, named in the message, is not a well-formed IDX file:
            bad magic number, unsupported element type, truncated or corrupt gzip data,
            fewer or more bytes than the header announces. A header that claims more
            data than the file can hold (its length, or for gzip the most its length can
            decompress to) is refused before any memory is set aside for it.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
        >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(p)
        tensor([7, 8, 9], dtype=torch.uint8)
    """
    path = Path(path)
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        source = _Source(path, compressed)
        if not compressed:
            return _parse(raw, path, md5, source)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path, md5, source)
        except (EOFError, OSError, zlib.error) as exc:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def read_verified(path: Path, name: str, dataset: str, verify: bool) -> Tensor:
    """Read ``path`` holding the file ``name`` of ``dataset``, checking it when official.

    Raises:
        ChecksumError: ``verify`` is on, the content has the official length and its MD5
            differs from the known one. The message names the file and both checksums.
    """
    md5 = hashlib.md5(usedforsecurity=False) if verify else None
    tensor = read_idx(path, md5)
    if md5 is None or 4 + 4 * tensor.dim() + tensor.numel() != OFFICIAL_SIZES[name]:
        return tensor
    got, expected = md5.hexdigest(), CONTENT_MD5[dataset][name]
    if got != expected:
        other = [d for d, table in CONTENT_MD5.items() if table[name] == got]
        why = (
            f"it holds {other[0]}, not {dataset}"
            if other
            else "the file is corrupt or not the official one"
        )
        raise ChecksumError(
            f"{path}: checksum mismatch for {dataset} {name}: expected md5 {expected} "
            f"(of the decompressed content), got {got}; {why}. Delete it and download "
            "again (download=True), or pass verify=False to use it as it is."
        )
    return tensor


ENV_VAR = "TORCHVAE_DATA_DIR"
_TEXTBOOK_DIR = Path("MNIST_DATA")
_DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_ALL_FILES = (*_FILES[True], *_FILES[False])
# name -> (title used in messages and checksum tables, torchvision folder, mirrors)
DATASETS = {
    "mnist": (
        "MNIST",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "fashion-mnist": (
        "Fashion-MNIST",
        "FashionMNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are nowhere on disk (and were not, or could not be, downloaded).

    The message lists every folder searched, the file names needed and how to provide them.
    """


def dataset_key(name: object) -> str:
    """Normalise a dataset name (``"fashion_mnist"`` -> ``"fashion-mnist"``) or raise."""
    key = str(name).lower().replace("_", "-") if isinstance(name, str) else ""
    key = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return key


def _search_dirs(key: str, root: str | os.PathLike[str] | None) -> list[Path]:
    """Where to look: ``root`` alone when given, else the default places in order."""
    _, folder, _ = DATASETS[key]
    if root is not None:
        return [Path(root) / folder / "raw", Path(root)]
    bases: list[Path] = []
    if os.environ.get(ENV_VAR):
        bases.append(Path(os.environ[ENV_VAR]))
    dirs = [d for base in bases for d in (base / folder / "raw", base)]
    dirs.append(_TEXTBOOK_DIR / folder / "raw")
    if key == "mnist":
        dirs.append(_TEXTBOOK_DIR)
    else:
        dirs.append(_DEBIAN_FASHION_MNIST)
    return list(dict.fromkeys(dirs))


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fetch(url: str) -> bytes:
    """Download ``url`` (tests replace this function so that none touches the network)."""
    import urllib.request  # only when downloading: it pulls in ssl and http

    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
    return data


def _download(key: str, folder: Path) -> list[str]:
    """Fetch the four ``.gz`` files into ``folder``; return the errors of failed attempts."""
    title, _, mirrors = DATASETS[key]
    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for name in _ALL_FILES:
        target = folder / f"{name}.gz"
        if target.is_file():
            continue
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                data = _fetch(url)
            except OSError as exc:
                errors.append(f"{url}: {exc}")
                continue
            got, expected = (
                hashlib.md5(data, usedforsecurity=False).hexdigest(),
                GZIP_MD5[title][name],
            )
            if got != expected:
                errors.append(f"{url}: checksum mismatch: expected md5 {expected}, got {got}")
                continue
            partial = target.with_suffix(".gz.part")
            partial.write_bytes(data)
            partial.replace(target)  # atomic: never a half-written file under the real name
            break
    return errors


def locate(
    key: str, root: str | os.PathLike[str] | None, train: bool, download: bool
) -> tuple[Path, Path]:
    """The image and label files of one split, searched for (or downloaded) as documented.

    Every split comes from the same folder: the first one searched that holds any of the
    dataset's four files. With ``root`` given, only ``root`` is searched.

    Raises:
        DatasetNotFoundError: Found nowhere (and not downloaded), or the folder holding
            the dataset lacks this split; the message lists where it looked, the missing
            files and how to provide them.
    """
    dirs = _search_dirs(key, root)
    home = next((d for d in dirs if any(_find(d, n) for n in _ALL_FILES)), None)
    base = root if root is not None else os.environ.get(ENV_VAR) or _TEXTBOOK_DIR
    target = Path(base) / DATASETS[key][1] / "raw"
    errors: list[str] = []
    # Downloading completes the download folder only, never a partial folder of the user's.
    incomplete = home is None or not all(_find(home, n) for n in _FILES[train])
    if download and incomplete and home in (None, target):
        errors = _download(key, target)
        home = target
    images, labels = (None, None) if home is None else (_find(home, n) for n in _FILES[train])
    if images is None or labels is None:
        raise DatasetNotFoundError(_not_found(key, train, dirs, errors, home))
    return images, labels


def _not_found(
    key: str, train: bool, dirs: list[Path], errors: list[str], home: Path | None
) -> str:
    title, folder, mirrors = DATASETS[key]
    needed = ", ".join(_FILES[train])
    split = "training" if train else "test"
    if home is not None and not errors:
        missing = [n for n in _FILES[train] if _find(home, n) is None]
        have = [n for n in _ALL_FILES if _find(home, n) is not None]
        return "\n".join(
            [
                f"{home.absolute()} holds {title} files ({', '.join(have)}) but not the "
                f"{split} split: missing {', '.join(missing)} (each raw or ending in .gz).",
                "Every split is read from the one folder that holds the data set; add the "
                "missing files there (or remove the partial folder).",
            ]
        )
    lines = [f"Could not find the {title} {split} files ({needed}).", "Looked in:"]
    for d in dirs:
        have = [n for n in _FILES[train] if _find(d, n) is not None]
        note = f" (has only {', '.join(have)})" if have else ""
        if not d.exists():
            note = " (does not exist)"
        lines.append(f"  - {d.absolute()}{note}")
    if errors:
        lines += ["Download failed:", *(f"  - {e}" for e in errors)]
    lines += [
        f"{title} needs four files, each raw or ending in .gz: {', '.join(_ALL_FILES)}.",
        "Provide them in one of these ways:",
        f"  - pass download=True to fetch them from {mirrors[0]} into ROOT/{folder}/raw;",
        f"  - put them in a folder and pass root=FOLDER, "
        f"or set the environment variable {ENV_VAR}=FOLDER;",
    ]
    if key == "fashion-mnist":
        lines.append(
            f"  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist "
            f"(installs them in {_DEBIAN_FASHION_MNIST})."
        )
    return "\n".join(lines)
