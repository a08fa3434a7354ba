"""Tests of checkpoint files: round trip, random states, atomic writes, bad files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from torchvae._io import atomic_write, check_writable
from torchvae.checkpoint import (
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
    assert loaded["format_version"] == 1


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
