"""End-to-end tests of the ``torchvae`` command line on small fake IDX data.

Most commands run in-process through :func:`torchvae.cli.main` (fast); two run as real
processes to check ``python -m torchvae`` and that an error prints no traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from test_data import write_dataset
from torchvae.cli import main
from torchvae.io.checkpoint import load_checkpoint
from torchvae.io.serialization import load_model, model_config
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.vae import VAE

# Two-dimensional latents on random images collapse, as they should; the warning is
# expected. Every test runs offline (conftest.offline).
pytestmark = [
    pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning"),
    pytest.mark.usefixtures("offline"),
]

TINY = ["--hidden-dim", "8", "--latent-dim", "2", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "data", compress=True)  # 12 training and 7 test images
    return tmp_path / "data"


def train(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data-dir", str(data_dir), "--out-dir", str(out), *TINY, *extra])


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_train_writes_model_checkpoints_logs_and_samples(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "2") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("test -ELBO ")
    final = lines[-1]
    for path in ("model.pt", "samples.png", "checkpoints", "tensorboard"):
        assert str(out / path) in final
    assert f"tensorboard --logdir {out / 'tensorboard'}" in final

    model = load_model(out / "model.pt")
    assert isinstance(model, VAE) and model.latent_dim == 2
    assert png_size(out / "samples.png") == (8 * 30 + 2, 8 * 30 + 2)  # 64 images, 8 a row
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "best.pt",
        "epoch-0001.pt",
        "epoch-0002.pt",
    ]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["latent_dim"] == 2 and config["model"]["type"] == "VAE"
    state = load_checkpoint(out / "checkpoints" / "epoch-0002.pt")
    assert state["epoch"] == 2 and state["global_step"] == 2 * 3  # 12 images, batches of 4
    torch.testing.assert_close(state["model"], model.state_dict())


def test_resume_equals_an_uninterrupted_run(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(data_dir, tmp_path / "straight", "--epochs", "3") == 0
    assert train(data_dir, tmp_path / "split", "--epochs", "1") == 0
    args = ["--resume", "last", "--epochs", "3", "--data-dir", str(data_dir), "--device", "cpu"]
    assert main(["train", "--out-dir", str(tmp_path / "split"), *args]) == 0
    assert "resuming" in capsys.readouterr().out
    straight = load_model(tmp_path / "straight" / "model.pt").state_dict()
    split = load_model(tmp_path / "split" / "model.pt").state_dict()
    for key, value in straight.items():
        assert torch.equal(value, split[key]), key


def test_resume_from_a_checkpoint_file_keeps_the_run_folder(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    ckpt = out / "checkpoints" / "epoch-0001.pt"
    args = ["--resume", str(ckpt), "--epochs", "2", "--data-dir", str(data_dir), "--device", "cpu"]
    assert main(["train", *args]) == 0
    assert (out / "checkpoints" / "epoch-0002.pt").is_file()


def test_resume_refuses_changed_settings_and_reused_folders(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    capsys.readouterr()
    changed = ["--resume", "last", "--epochs", "2", "--latent-dim", "3"]
    assert main(["train", "--out-dir", str(out), "--data-dir", str(data_dir), *changed]) == 1
    err = capsys.readouterr().err
    assert "--latent-dim 3 differs from the resumed run's 2" in err
    assert train(data_dir, out, "--epochs", "2") == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", "last", "--data-dir", str(data_dir)]) == 1
    assert "--resume last needs --out-dir" in capsys.readouterr().err


def test_max_batches_limits_each_epoch(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "2", "--max-batches", "1") == 0
    assert load_checkpoint(out / "checkpoints" / "epoch-0002.pt")["global_step"] == 2


@pytest.mark.parametrize("source", ["model.pt", "checkpoints/epoch-0001.pt", "."])
def test_sample_writes_a_png_grid(
    data_dir: Path, tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    png = tmp_path / "grids" / "s.png"
    args = ["sample", "--checkpoint", str(out / source), "--n", "10", "--nrow", "5"]
    assert main([*args, "--out", str(png), "--seed", "1", "--temperature", "0.5"]) == 0
    assert png_size(png) == (5 * 30 + 2, 2 * 30 + 2)
    assert f"wrote 10 samples to {png}" in capsys.readouterr().out


def test_sample_is_reproducible_with_a_seed(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = ["--checkpoint", str(out), "--out", str(tmp_path / f"{name}.png"), "--seed", seed]
        assert main(["sample", *args]) == 0
    read = [(tmp_path / f"{n}.png").read_bytes() for n in "abc"]
    assert read[0] == read[1] != read[2]


def test_eval_reports_finite_numbers_as_json_and_text(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    capsys.readouterr()
    args = ["eval", "--checkpoint", str(out / "model.pt"), "--data-dir", str(data_dir)]
    assert main([*args, "--k", "20", "--chunk-size", "16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_examples"] == 7 and result["k"] == 20 and result["latent_dim"] == 2
    for key in ("neg_elbo", "reconstruction", "kl", "nll", "bits_per_dim", "mutual_information"):
        assert math.isfinite(result[key]), key
    assert result["neg_elbo"] == pytest.approx(result["reconstruction"] + result["kl"])
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (784 * math.log(2)))
    assert len(result["kl_per_dim"]) == 2 and 0 <= result["active_units"] <= 2

    assert main([*args, "--k", "5", "--max-examples", "3"]) == 0
    text = capsys.readouterr().out
    assert "(3 examples)" in text
    for label in ("-ELBO", "reconstruction", "NLL (IWAE)", "bits/dim", "active units", "I(x;z)"):
        assert label in text


@pytest.mark.parametrize(
    "options",
    [
        ["--model", "conv", "--channels", "2,4", "--warmup-epochs", "1"],
        ["--likelihood", "continuous-bernoulli", "--binarize", "dynamic", "--free-bits", "0.1"],
        [
            "--likelihood",
            "gaussian",
            "--binarize",
            "static",
            "--beta",
            "0.5",
            "--hidden-dim",
            "8,4",
        ],
    ],
)
def test_train_options_then_eval(
    data_dir: Path, tmp_path: Path, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1", *options) == 0
    capsys.readouterr()
    for source in ("model.pt", "checkpoints/best.pt"):
        args = ["--checkpoint", str(out / source), "--data-dir", str(data_dir), "--k", "3"]
        assert main(["eval", *args, "--json"]) == 0
        assert math.isfinite(json.loads(capsys.readouterr().out)["nll"])


@pytest.mark.parametrize(
    "options",
    [
        ["--prior", "vamp", "--prior-components", "3"],
        ["--prior", "mixture", "--posterior", "flow", "--likelihood", "continuous-bernoulli"],
        ["--prior", "flow", "--likelihood", "gaussian", "--conditional"],
    ],
    ids=lambda o: "-".join(o[1::2]),
)
def test_prior_posterior_and_likelihood_travel_in_the_model_file(
    data_dir: Path, tmp_path: Path, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("zuko")
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1", *options) == 0
    model = load_model(out / "model.pt")
    assert isinstance(model, VAE)
    config = model_config(model)
    assert config["prior"]["type"] == {"vamp": "VampPrior", "mixture": "MixturePrior"}.get(
        options[1], "FlowPrior"
    )
    if "--posterior" in options:
        assert config["posterior"]["type"] == "FlowPosterior"
    (out / "config.json").unlink()  # the model file alone says what eval and sample need
    capsys.readouterr()
    args = ["--checkpoint", str(out / "model.pt"), "--data-dir", str(data_dir), "--k", "3"]
    assert main(["eval", *args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert math.isfinite(result["nll"]) and math.isfinite(result["neg_elbo"])
    png = tmp_path / "s.png"
    assert main(["sample", "--checkpoint", str(out / "model.pt"), "--out", str(png)]) == 0
    resumed = ["--resume", "last", "--out-dir", str(out), "--epochs", "2", "--device", "cpu"]
    assert main(["train", "--data-dir", str(data_dir), *resumed]) == 0


def test_conditional_train_and_sample_a_class(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cvae"
    assert train(data_dir, out, "--epochs", "1", "--conditional") == 0
    assert isinstance(load_model(out / "model.pt"), ConditionalVAE)
    assert png_size(out / "samples.png") == (10 * 30 + 2, 10 * 30 + 2)  # a column per class
    png = tmp_path / "three.png"
    assert main(["sample", "--checkpoint", str(out), "--label", "3", "--out", str(png)]) == 0
    assert png_size(png) == (8 * 30 + 2, 8 * 30 + 2)
    assert main(["sample", "--checkpoint", str(out), "--label", "10", "--out", str(png)]) == 1
    assert "--label must be in [0, 10)" in capsys.readouterr().err
    args = ["eval", "--checkpoint", str(out), "--data-dir", str(data_dir), "--k", "3", "--json"]
    assert main(args) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out)["nll"])


def test_label_needs_a_conditional_model(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(data_dir, tmp_path / "run", "--epochs", "1") == 0
    assert main(["sample", "--checkpoint", str(tmp_path / "run"), "--label", "1"]) == 1
    assert "--label needs a conditional model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "-1"],
        ["train", "--epochs", "two"],
        ["train", "--lr", "0"],
        ["train", "--beta", "nan"],
        ["train", "--hidden-dim", "4,x"],
        ["train", "--model", "transformer"],
        ["train", "--device", "abacus"],
        ["sample"],
        ["sample", "--checkpoint", "m.pt", "--n", "0"],
        ["eval", "--checkpoint", "m.pt", "--k", "0"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_missing_data_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    args = ["train", "--data-dir", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "r")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("torchvae: error: Could not find the MNIST training files")
    assert "--download fetches them" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_an_explicit_data_dir_is_the_only_place_looked_in(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    write_dataset(Path("MNIST_DATA"), compress=False)  # complete, in a place searched by default
    capsys.readouterr()
    args = ["eval", "--checkpoint", str(out / "model.pt"), "--k", "2"]
    assert main([*args, "--data-dir", str(tmp_path / "nonexistent")]) == 1
    assert "nonexistent (does not exist)" in capsys.readouterr().err
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (partial / name).write_bytes((data_dir / name).read_bytes())
    assert train(partial, tmp_path / "run2", "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in err
    assert main([*args, "--data-dir", str(partial)]) == 1
    assert "not the test split" in capsys.readouterr().err


def test_bad_checkpoints_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    for path in (garbage, tmp_path / "missing.pt", tmp_path):
        assert main(["sample", "--checkpoint", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("torchvae: error: ") and str(path) in err


def test_truncated_model_file(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(data_dir, out, "--epochs", "1") == 0
    data = (out / "model.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(cut), "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert str(cut) in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        main(["--debug", "train", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "r")])


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TORCHVAE_DATA_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "torchvae", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_python_m_torchvae(tmp_path: Path) -> None:
    done = run_module("--help", cwd=tmp_path)
    assert done.returncode == 0
    for word in ("train", "sample", "eval"):
        assert word in done.stdout
    done = run_module("train", "--data-dir", str(tmp_path), "--num-threads", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("torchvae: error: Could not find the MNIST")
    assert "Traceback" not in done.stderr


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "sample", "eval"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and f"torchvae {command}" in out


@pytest.mark.slow
def test_train_under_torchrun_shards_the_data_and_writes_once(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "torchvae", "train", "--data-dir", str(data_dir)]
    command += ["--out-dir", str(out), "--epochs", "2", "--num-threads", "1", *TINY]
    env = {k: v for k, v in os.environ.items() if k != "TORCHVAE_DATA_DIR"}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote model") == 1  # rank 0 alone writes and reports
    # 12 images, 6 per rank, batches of 4: 2 steps per epoch on each rank.
    assert load_checkpoint(out / "checkpoints" / "epoch-0002.pt")["global_step"] == 4
    assert isinstance(load_model(out / "model.pt"), VAE)
