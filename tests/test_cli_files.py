"""The command line and its files: one run per folder, files that say what they hold.

Two runs into one ``--out-dir`` (real processes), damaged checkpoints, model files that
carry their run's data set, and paths that are not what they seem.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_cli import TINY, data_dir, train  # noqa: F401 (fixtures)
from test_data import write_dataset
from torchvae.cli import _parser as cli_parser
from torchvae.cli import _train as cli_train
from torchvae.cli import main
from torchvae.io._lock import LOCK_NAME, hold_folder
from torchvae.io.serialization import read_metadata, save_model
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE

pytestmark = [
    pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning"),
    pytest.mark.usefixtures("offline"),
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHVAE_DATA_DIR", "RANK")}
    return {**env, "OMP_NUM_THREADS": "1"}


def _torchvae(*args: str) -> list[str]:
    return [sys.executable, "-m", "torchvae", *args]


def _wait_for_holder(lock: Path, pid: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180  # a guard against a hang, not a timing assertion
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the first run ended early: {process.communicate()}")
        if lock.is_file() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.1)
    raise AssertionError("the first run never took the folder")


@pytest.mark.slow
def test_a_second_run_into_a_held_folder_fails_at_once_naming_the_holder(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--out-dir", str(out), "--num-threads", "1", *TINY]
    first = subprocess.Popen(
        _torchvae("train", *common, "--epochs", "1000000"),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_holder(out / LOCK_NAME, first.pid, first)
        second = subprocess.run(
            _torchvae("train", *common, "--epochs", "1"),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1
        assert f"is in use by another torchvae run (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        resumed = subprocess.run(  # --resume too: the first run is still writing there
            _torchvae("train", "--resume", "last", "--out-dir", str(out)),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 1 and f"pid {first.pid}" in resumed.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the operating system drops the lock
        first.wait(timeout=60)
    with hold_folder(out):  # free again
        pass
    assert not (out / LOCK_NAME).exists()


def test_the_folder_is_held_until_the_model_is_written(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, seen = tmp_path / "run", []
    save = cli_train._save_model

    def save_and_probe(model: torch.nn.Module, path: Path, **kwargs: object) -> None:
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another file description
            seen.append((out / LOCK_NAME).read_text().strip())
        finally:
            os.close(fd)
        save(model, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_train, "_save_model", save_and_probe)
    assert train(data_dir, out, "--epochs", "1") == 0
    assert seen == [str(os.getpid())]
    assert not (out / LOCK_NAME).exists()  # released and removed at the end


def test_stray_temporary_files_in_the_run_folder_are_removed_at_the_next_start(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    stray = [out / ".model.pt.abcd1234.tmp", out / "checkpoints" / ".epoch-0002.pt.zz_9yy8x.tmp"]
    for path in stray:
        path.write_bytes(b"the first bytes")
    resume = ["--resume", "last", "--out-dir", str(out), "--data-dir", str(data_dir)]
    assert main(["train", *resume, "--epochs", "2", "--device", "cpu"]) == 0
    assert not any(path.exists() for path in stray)


def test_eval_and_sample_take_the_run_from_the_model_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fashion = tmp_path / "fashion"
    write_dataset(fashion, compress=False)
    out = tmp_path / "run"
    assert train(fashion, out, "--epochs", "1", "--dataset", "fashion-mnist") == 0
    meta = read_metadata(out / "model.pt")
    assert (meta["dataset"], meta["image_shape"], meta["binarize"]) == (
        "fashion-mnist",
        [1, 28, 28],
        "none",
    )
    assert meta["settings"]["latent_dim"] == 2 and meta["epochs"] == 1
    # config.json beside it is another run's now: it must not be read
    (out / "config.json").write_text(
        json.dumps(
            {"settings": {**cli_parser.DEFAULTS, "dataset": "mnist"}, "image_shape": [1, 4, 196]}
        )
    )
    capsys.readouterr()
    args = ["eval", "--checkpoint", str(out / "model.pt"), "--data-dir", str(fashion), "--k", "2"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "fashion-mnist"
    png = tmp_path / "s.png"
    assert main(["sample", "--checkpoint", str(out / "model.pt"), "--out", str(png)]) == 0
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (8 * 30 + 2, 8 * 30 + 2)  # 28x28 images, not 4x196


def test_a_model_file_that_does_not_say_its_data_set_needs_dataset(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "model.pt"
    save_model(VAE(Encoder(784, 8, 2), Decoder(2, 8, 784)), path)
    args = ["eval", "--checkpoint", str(path), "--data-dir", str(data_dir), "--k", "2", "--json"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "does not say which data set" in err and "--dataset fashion-mnist" in err
    assert main([*args, "--dataset", "mnist"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "mnist"


def _flip_a_weight(path: Path) -> None:
    weight = next(iter(torch.load(path, weights_only=True)["model"].values()))
    data = bytearray(path.read_bytes())
    data[data.find(weight.numpy().tobytes()) + 3] ^= 0x20
    path.write_bytes(bytes(data))


def test_damaged_checkpoints_are_refused_naming_the_newest_good_one(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "2") == 0
    damaged, good = out / "checkpoints" / "epoch-0002.pt", out / "checkpoints" / "epoch-0001.pt"
    _flip_a_weight(damaged)
    capsys.readouterr()
    resume = ["--resume", "last", "--out-dir", str(out), "--data-dir", str(data_dir)]
    commands = [
        ["train", *resume, "--epochs", "3"],
        ["eval", "--checkpoint", str(damaged), "--data-dir", str(data_dir), "--k", "2"],
        ["sample", "--checkpoint", str(damaged), "--out", str(tmp_path / "s.png")],
    ]
    for command in commands:
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert f"checkpoint '{damaged}' is corrupted" in err and "SHA-256" in err, command
        assert f"the newest good checkpoint beside it is '{good}'" in err, command


def test_paths_that_are_not_what_they_seem(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    capsys.readouterr()
    sample = ["sample", "--checkpoint", str(out / "model.pt")]
    (tmp_path / "grids").mkdir()
    for target, message in (
        (tmp_path / "grids", "is a folder: give the image file to write"),
        (tmp_path / "grid.foo", "its extension '.foo' names no image format"),
        (tmp_path / "grid", "it has no extension, which names no image format"),
    ):
        assert main([*sample, "--out", str(target)]) == 1
        assert message in capsys.readouterr().err
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    for command in ("sample", "eval"):
        assert main([command, "--checkpoint", str(loop)]) == 1
        assert "is a loop of symbolic links" in capsys.readouterr().err
    dangling = tmp_path / "dangling.pt"
    dangling.symlink_to(tmp_path / "gone.pt")
    assert main(["sample", "--checkpoint", str(dangling)]) == 1
    assert "is a symbolic link to" in capsys.readouterr().err
