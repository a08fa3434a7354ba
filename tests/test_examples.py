"""Every script in examples/ runs end to end, briefly, on small fake MNIST files.

Each example runs as a subprocess (as a user runs it) on IDX files written by the test:
a few hundred random images and labels, so that each epoch is two or three batches. The
checks: exit status 0, the files the script says it writes exist and are PNGs or model
files that load back, and ``--help`` documents the common options.
"""

from __future__ import annotations

import os
import runpy
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIMEOUT = 300


def write_idx(path: Path, data: torch.Tensor) -> None:
    """Write a ``uint8`` tensor as an IDX file (the format of the MNIST files)."""
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat folder with the four MNIST files: 250 training and 120 test images."""
    folder = tmp_path_factory.mktemp("fake_mnist")
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 250), ("t10k", 120)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    return folder


def run(script: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TORCHVAE_DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, (
        f"{script} {' '.join(map(str, args))} exited with {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"


def test_every_example_is_tested() -> None:
    assert SCRIPTS == [
        "conditional.py",
        "custom_model.py",
        "generate.py",
        "latent_space.py",
        "train_mnist.py",
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_documents_the_common_options(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process (torch is already imported), unlike the runs below.
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data-dir", "--dataset", "--epochs", "--max-batches", "--out-dir"):
        assert option in out, f"{script} --help does not mention {option}"


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run train_mnist.py for two short epochs; its output folder."""
    out = tmp_path_factory.mktemp("train_mnist")
    result = run(
        "train_mnist.py",
        "--data-dir", data_dir, "--dataset", "mnist", "--epochs", "2",
        "--max-batches", "2", "--latent-dim", "8", "--hidden-dim", "32", "--out-dir", out,
        cwd=out,
    )  # fmt: skip
    assert "epoch   2" in result.stdout
    return out


def test_train_mnist(trained: Path) -> None:
    assert_png(trained / "samples.png")
    assert (trained / "vae.pt").is_file()
    events = list((trained / "runs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file was written"


def test_train_mnist_checkpoint_loads(trained: Path) -> None:
    from torchvae import VAE

    model = VAE.load(trained / "vae.pt")
    assert model.sample(3).shape == (3, 784)


def test_generate_from_checkpoint(trained: Path, data_dir: Path, tmp_path: Path) -> None:
    run(
        "generate.py",
        "--checkpoint", trained / "vae.pt", "--data-dir", data_dir, "--dataset", "mnist",
        "--n", "16", "--rows", "2", "--steps", "5", "--out-dir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    for name in ("samples.png", "reconstructions.png", "interpolation.png"):
        assert_png(tmp_path / name)


def test_generate_trains_when_no_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "new" / "vae.pt"
    run(
        "generate.py",
        "--checkpoint", checkpoint, "--data-dir", data_dir, "--dataset", "mnist",
        "--epochs", "1", "--max-batches", "1", "--out-dir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert checkpoint.is_file()
    assert_png(tmp_path / "interpolation.png")


def test_latent_space(data_dir: Path, tmp_path: Path) -> None:
    run(
        "latent_space.py",
        "--data-dir", data_dir, "--dataset", "mnist", "--epochs", "1", "--max-batches", "2",
        "--grid", "5", "--out-dir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert_png(tmp_path / "manifold.png")
    assert_png(tmp_path / "scatter.png")


def test_conditional(data_dir: Path, tmp_path: Path) -> None:
    result = run(
        "conditional.py",
        "--data-dir", data_dir, "--dataset", "mnist", "--epochs", "1", "--max-batches", "2",
        "--digit", "3", "--n", "4", "--latent-dim", "4", "--out-dir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert "test -ELBO" in result.stdout
    assert_png(tmp_path / "digit_3.png")
    assert_png(tmp_path / "classes.png")
    from torchvae import ConditionalVAE, load_model

    model = load_model(tmp_path / "cvae.pt")
    assert isinstance(model, ConditionalVAE)
    assert model.sample(2, y=3).shape == (2, 784)


def test_custom_model_and_resume(data_dir: Path, tmp_path: Path) -> None:
    common = ("--data-dir", data_dir, "--dataset", "mnist", "--max-batches", "2",
              "--latent-dim", "4", "--k", "4", "--out-dir", tmp_path)  # fmt: skip
    run("custom_model.py", "--epochs", "1", *common, cwd=tmp_path)
    assert (tmp_path / "checkpoints" / "epoch-0001.pt").is_file()
    result = run("custom_model.py", "--epochs", "2", "--resume", *common, cwd=tmp_path)
    assert (tmp_path / "checkpoints" / "epoch-0002.pt").is_file()
    assert "-log p(x)" in result.stdout
    assert_png(tmp_path / "samples.png")
    assert (tmp_path / "weights.pt").is_file()
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist package is not installed",
)
def test_train_mnist_on_debian_fashion_mnist(tmp_path: Path) -> None:
    result = run(
        "train_mnist.py",
        "--dataset", "fashion-mnist", "--epochs", "1", "--max-batches", "3",
        "--out-dir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert "fashion-mnist" in result.stdout
    assert_png(tmp_path / "samples.png")
