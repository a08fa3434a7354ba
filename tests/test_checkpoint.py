"""Tests of checkpoint files: round trip, random states, atomic writes, bad files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from torchvae import VAE, Decoder, Encoder, ModelCheckpoint, Trainer
from torchvae.io._atomic import atomic_write, check_writable
from torchvae.io.checkpoint import (
    CheckpointError,
    find_last_checkpoint,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


def test_round_trip_keeps_tensors_and_plain_values(tmp_path: Path) -> None:
    state = {"w": torch.randn(3, 2), "epoch": 4, "names": ["a", "b"], "best": None}
    path = save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"])
    assert (loaded["epoch"], loaded["names"], loaded["best"]) == (4, ["a", "b"], None)
    assert loaded["format_version"] == 2
    assert "sha256" not in loaded


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    save_checkpoint({"rng": get_rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(4), random.random(), np.random.rand())
    torch.rand(10), random.random(), np.random.rand()
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(4), expected[0])
    assert random.random() == expected[1]
    assert np.random.rand() == expected[2]


def test_failed_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    path = save_checkpoint({"epoch": 1}, tmp_path / "c.pt")
    with pytest.raises(RuntimeError, match="disk"), atomic_write(path) as f:
        f.write(b"half a checkp")
        raise RuntimeError("disk full")
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_damaged_files_name_the_file(tmp_path: Path, damage: str) -> None:
    path = save_checkpoint({"w": torch.randn(100, 100), "epoch": 2}, tmp_path / "c.pt")
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = os.urandom(len(data))
    else:
        data = data[:20] + bytes(b ^ 0xFF for b in data[20:200]) + data[200:]
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"c\.pt.*truncated or corrupted"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickled_objects_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "torchvae-checkpoint", "format_version": 1, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="loaded safely"):
        load_checkpoint(path)
    assert "never run" not in capsys.readouterr().out


def test_not_a_checkpoint_missing_file_and_future_version(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a torchvae checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")
    save_checkpoint({"format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "new.pt")


def test_find_last_checkpoint(tmp_path: Path) -> None:
    assert find_last_checkpoint(tmp_path) is None
    assert find_last_checkpoint(tmp_path / "absent") is None
    for name in ("epoch-0002.pt", "epoch-0010.pt", "best.pt", "epoch-0009.pt"):
        (tmp_path / name).write_bytes(b"")
    assert find_last_checkpoint(tmp_path) == tmp_path / "epoch-0010.pt"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere"
)
def test_unwritable_directory_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OSError, match=r"locked.*not writable"):
            check_writable(locked, "checkpoint directory")
        with pytest.raises(OSError, match="locked"):
            save_checkpoint({"epoch": 1}, locked / "c.pt")
    finally:
        locked.chmod(0o700)


def test_check_writable_creates_the_directory(tmp_path: Path) -> None:
    folder = check_writable(tmp_path / "a" / "b")
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


def test_unwritable_because_a_file_is_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=r"file.*not writable"):
        check_writable(tmp_path / "file" / "sub")


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def same(a: object, b: object) -> bool:
    """Equal nested content, tensors compared by dtype, shape and every bit."""
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and (a.dtype, a.shape) == (b.dtype, b.shape)
            and torch.equal(_bits(a), _bits(b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))  # type: ignore[arg-type]
    return type(a) is type(b) and (a == b or (a != a and b != b))


@pytest.fixture
def trained_run(tmp_path: Path) -> Path:
    """Two epochs of a tiny VAE with Adam: checkpoints with weights, moments and random states."""
    model = VAE(Encoder(12, 8, 2), Decoder(2, 8, 12))
    trainer = Trainer(
        model, device="cpu", seed=0, batch_size=8, callbacks=[ModelCheckpoint(tmp_path / "ck")]
    )
    trainer.fit(torch.rand(32, 12), epochs=2)
    return tmp_path / "ck"


def test_every_single_bit_flip_is_detected_or_harmless(trained_run: Path) -> None:
    path = trained_run / "epoch-0002.pt"
    original, data = load_checkpoint(path), path.read_bytes()
    n, detected = 120, 0
    for i in range(n):
        offset = (i * (len(data) - 1)) // (n - 1)
        flipped = bytearray(data)
        flipped[offset] ^= 1 << (i % 8)
        path.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as e:
            detected += 1
            assert str(path) in str(e)
            if "corrupted" in str(e):
                assert e.last_good == trained_run / "epoch-0001.pt"
                assert "newest good checkpoint beside it is" in str(e)
                assert str(trained_run / "epoch-0001.pt") in str(e)
            continue
        # not detected: only where the bit changes nothing loaded (zip padding, CRCs)
        assert same(loaded, original), f"a flip at byte {offset} of {len(data)} loaded silently"
    assert detected > n // 2


def test_a_damaged_checkpoint_without_good_neighbours_says_so(tmp_path: Path) -> None:
    path = save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "epoch-0003.pt")
    save_checkpoint({"w": torch.ones(3)}, tmp_path / "epoch-0002.pt")
    (tmp_path / "epoch-0001.pt").write_bytes(b"junk")
    for damaged in (path, tmp_path / "epoch-0002.pt"):
        data = bytearray(damaged.read_bytes())
        at = data.find(bytes(4000) if damaged == path else b"\x00\x00\x80?")
        data[at + 1] ^= 0x10
        damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="no good checkpoint is beside it") as info:
        load_checkpoint(path)
    assert info.value.last_good is None and info.value.recognized


def test_resume_from_a_damaged_checkpoint_names_the_newest_good_one(trained_run: Path) -> None:
    path = trained_run / "epoch-0002.pt"
    weight = next(iter(load_checkpoint(path)["model"].values()))
    data = bytearray(path.read_bytes())
    data[data.find(weight.numpy().tobytes()) + 5] ^= 0x04  # one bit of one weight
    path.write_bytes(bytes(data))
    trainer = Trainer(
        VAE(Encoder(12, 8, 2), Decoder(2, 8, 12)),
        device="cpu",
        batch_size=8,
        callbacks=[ModelCheckpoint(trained_run)],
    )
    with pytest.raises(CheckpointError, match=r"epoch-0002\.pt.*epoch-0001\.pt"):
        trainer.fit(torch.rand(32, 12), epochs=3, resume="last")


def test_version_1_checkpoints_without_a_digest_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format": "torchvae-checkpoint", "format_version": 1, "epoch": 7}, path)
    assert load_checkpoint(path)["epoch"] == 7
    torch.save({"format": "torchvae-checkpoint", "format_version": 2, "epoch": 7}, path)
    with pytest.raises(CheckpointError, match="holds no SHA-256 checksum"):
        load_checkpoint(path)


def test_folders_and_odd_links_are_named_for_what_they_are(tmp_path: Path) -> None:
    save_checkpoint({"epoch": 1}, tmp_path / "epoch-0001.pt")
    with pytest.raises(IsADirectoryError, match=r"is a folder, not a file.*resolve_checkpoint"):
        load_checkpoint(tmp_path)
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match=r"loop\.pt' is a loop of symbolic links"):
        load_checkpoint(loop)
    dangling = tmp_path / "dangling.pt"
    dangling.symlink_to(tmp_path / "gone.pt")
    with pytest.raises(FileNotFoundError, match=r"symbolic link to .*gone\.pt.*does not exist"):
        load_checkpoint(dangling)
