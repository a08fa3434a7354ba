"""CIFAR-10's binary release on small fake batches of the real format; no network."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import torch

from torchvae.data import ChecksumError, DatasetNotFoundError, cifar
from torchvae.data.cifar import CIFAR10_CLASSES, CIFARFormatError, load_cifar10

TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST = "test_batch.bin"


def fake_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, bytes]:
    """``n`` records: label byte, then the red, green and blue 32x32 planes, rows in order."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8)
    records = bytearray()
    for image, label in zip(images, labels, strict=True):
        records.append(int(label))
        for channel in range(3):
            for row in range(32):
                records += bytes(image[channel, row].tolist())
    return images, labels.long(), bytes(records)


def write_cifar(folder: Path, n: int = 4, meta: bool = True) -> dict[str, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate([*TRAIN, TEST]):
        images, labels, data = fake_batch(n, i)
        (folder / name).write_bytes(data)
        batches[name] = (images, labels)
    if meta:
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return batches


def expected(batches: dict[str, tuple], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    names = TRAIN if train else [TEST]
    return torch.cat([batches[n][0] for n in names]), torch.cat([batches[n][1] for n in names])


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no TORCHVAE_DATA_DIR."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TORCHVAE_DATA_DIR", raising=False)
    return tmp_path


@pytest.mark.parametrize("layout", ["torchvision", "flat", "env", "default"])
@pytest.mark.parametrize("train", [True, False])
def test_found_in_each_layout(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, layout: str, train: bool
) -> None:
    root = isolated / "data_root"
    folder = {
        "torchvision": root / "cifar-10-batches-bin",
        "flat": root,
        "env": root / "cifar-10-batches-bin",
        "default": isolated / "work" / "data" / "cifar-10-batches-bin",
    }[layout]
    batches = write_cifar(folder)
    if layout == "env":
        monkeypatch.setenv("TORCHVAE_DATA_DIR", str(root))
    images, labels, classes = load_cifar10(
        root if layout in ("torchvision", "flat") else None, train
    )
    want_images, want_labels = expected(batches, train)
    assert images.dtype == torch.uint8 and images.shape == (len(want_images), 3, 32, 32)
    assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert labels.dtype == torch.int64 and classes == CIFAR10_CLASSES


def write_archive(
    path: Path, files: dict[str, bytes], prefix: str = "cifar-10-batches-bin/"
) -> None:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(prefix.rstrip("/"))
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_read_from_the_tar_gz_archive(isolated: Path) -> None:
    source = isolated / "src"
    batches = write_cifar(source)
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    files["batches.meta.txt"] = "\n".join(f"class{i}" for i in range(10)).encode()
    root = isolated / "root"
    root.mkdir()
    write_archive(root / "cifar-10-binary.tar.gz", files)
    for train in (True, False):
        images, labels, classes = load_cifar10(root, train)
        want_images, want_labels = expected(batches, train)
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
        assert classes == tuple(f"class{i}" for i in range(10))


def test_without_meta_file_the_official_names_are_used(isolated: Path) -> None:
    write_cifar(isolated / "r", meta=False)
    assert load_cifar10(isolated / "r", False)[2] == CIFAR10_CLASSES


def test_missing_files_error_says_where_and_how(isolated: Path) -> None:
    root = isolated / "root"
    root.mkdir()
    (root / "data_batch_1.bin").write_bytes(fake_batch(2, 0)[2])
    (root / "cifar-10-batches-py").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(root, train=True)
    message = str(info.value)
    assert "CIFAR-10 training files" in message
    for place in (root / "cifar-10-batches-bin", root, root / "cifar-10-binary.tar.gz"):
        assert f"  - {place.absolute()}" in message
    assert f"{root.absolute()} (has only data_batch_1.bin)" in message
    assert cifar.URL in message and cifar.ARCHIVE_MD5 in message
    assert "TORCHVAE_DATA_DIR" in message and "pickled Python version" in message
    assert isinstance(info.value, FileNotFoundError)


def test_root_is_searched_before_the_environment(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, env = write_cifar(isolated / "mine"), write_cifar(isolated / "env", n=2)
    monkeypatch.setenv("TORCHVAE_DATA_DIR", str(isolated / "env"))
    assert torch.equal(load_cifar10(isolated / "mine", False)[0], expected(mine, False)[0])
    assert torch.equal(load_cifar10(None, False)[0], expected(env, False)[0])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "whole records of 3073 bytes"),
        (b"\x01" * 3074, "holds 3074 bytes"),
        (b"\x80\x02" + b"x" * 100, "pickled Python version"),
        (b"\x0a" + b"\x00" * 3072, r"labels must lie in 0\.\.9, got 10 \(record 0\)"),
    ],
)
def test_malformed_batches(isolated: Path, data: bytes, match: str) -> None:
    write_cifar(isolated / "r")
    (isolated / "r" / TEST).write_bytes(data)
    with pytest.raises(CIFARFormatError, match=match) as info:
        load_cifar10(isolated / "r", train=False)
    assert TEST in str(info.value)


def test_bad_meta_file(isolated: Path) -> None:
    write_cifar(isolated / "r")
    (isolated / "r" / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(CIFARFormatError, match="10 classes, one a line, got 2"):
        load_cifar10(isolated / "r", train=False)


def test_corrupt_archive(isolated: Path) -> None:
    (isolated / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CIFARFormatError, match="not a readable tar archive"):
        load_cifar10(isolated, train=False)


def test_official_length_file_is_checked(isolated: Path) -> None:
    """A file of the official length (10000 records) must have the official MD5."""
    write_cifar(isolated / "r")
    _, _, data = fake_batch(1, 7)
    (isolated / "r" / TEST).write_bytes(data * 10_000)
    assert len(data) * 10_000 == cifar.BATCH_BYTES
    with pytest.raises(ChecksumError, match=r"checksum mismatch for CIFAR-10 test_batch\.bin"):
        load_cifar10(isolated / "r", train=False)
    images, _, _ = load_cifar10(isolated / "r", train=False, verify=False)
    assert images.shape == (10_000, 3, 32, 32)


def test_official_length_file_with_the_official_checksum_passes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(isolated / "r")
    data = (isolated / "r" / TEST).read_bytes()
    monkeypatch.setattr(cifar, "BATCH_BYTES", len(data))
    monkeypatch.setitem(cifar.BATCH_MD5, TEST, hashlib.md5(data).hexdigest())
    load_cifar10(isolated / "r", train=False)
    monkeypatch.setitem(cifar.BATCH_MD5, TEST, "0" * 32)
    with pytest.raises(ChecksumError):
        load_cifar10(isolated / "r", train=False)


def test_official_length_archive_is_checked(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = isolated / "src"
    write_cifar(source)
    write_archive(
        isolated / "cifar-10-binary.tar.gz", {p.name: p.read_bytes() for p in source.iterdir()}
    )
    monkeypatch.setattr(
        cifar, "ARCHIVE_BYTES", os.path.getsize(isolated / "cifar-10-binary.tar.gz")
    )
    with pytest.raises(ChecksumError, match=r"cifar-10-binary\.tar\.gz: checksum mismatch"):
        load_cifar10(isolated, train=False)
    assert load_cifar10(isolated, train=False, verify=False)[0].shape == (4, 3, 32, 32)


def test_archive_members_other_than_regular_files_are_ignored(isolated: Path) -> None:
    source = isolated / "src"
    write_cifar(source)
    path = isolated / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        link = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(DatasetNotFoundError):
        load_cifar10(isolated, train=False)
