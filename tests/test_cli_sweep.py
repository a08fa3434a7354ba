"""``torchvae sweep``: a grid of runs in one process, each folder read like a train run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from test_data import write_dataset
from torchvae.cli import main
from torchvae.io.serialization import load_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning"),
    pytest.mark.usefixtures("offline"),
]

TINY = ["--hidden-dim", "8", "--latent-dim", "2", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "data", compress=True)  # 12 training and 7 test images
    return tmp_path / "data"


def sweep(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["sweep", "--data-dir", str(data_dir), "--out-dir", str(out), *TINY, *extra])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).state_dict()


def test_each_member_is_the_train_run_of_its_flags(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    grid = ["--grid", "beta=0.5,2", "--grid", "seed=0,1", "--epochs", "2"]
    assert sweep(data_dir, out, *grid) == 0
    names = json.loads((out / "sweep.json").read_text())["members"]
    assert names == ["beta-0.5_seed-0", "beta-0.5_seed-1", "beta-2_seed-0", "beta-2_seed-1"]
    run = tmp_path / "train"
    args = ["train", "--data-dir", str(data_dir), "--out-dir", str(run), *TINY, "--epochs", "2"]
    assert main([*args, "--beta", "2", "--seed", "1"]) == 0
    mine, theirs = weights(out / "beta-2_seed-1" / "model.pt"), weights(run / "model.pt")
    for k, v in theirs.items():
        torch.testing.assert_close(mine[k], v, atol=1e-5, rtol=1e-4)
    member = out / "beta-0.5_seed-0"
    assert {"config.json", "model.pt", "samples.png", "checkpoints", "tensorboard"} <= {
        p.name for p in member.iterdir()
    }
    assert main(["eval", "--checkpoint", str(member), "--data-dir", str(data_dir), "--k", "3"]) == 0
    png = tmp_path / "s.png"
    assert main(["sample", "--checkpoint", str(member), "--out", str(png), "--n", "4"]) == 0
    assert png.is_file()
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results] == names and all("val_loss" in r for r in results)


def test_resume_continues_every_member_exactly(data_dir: Path, tmp_path: Path) -> None:
    grid = ["--grid", "lr=0.001,0.003", "--grid", "free-bits=0,0.1"]
    assert sweep(data_dir, tmp_path / "whole", *grid, "--epochs", "3") == 0
    assert sweep(data_dir, tmp_path / "part", *grid, "--epochs", "1") == 0
    assert sweep(data_dir, tmp_path / "part", "--resume", "--epochs", "3") == 0
    for name in json.loads((tmp_path / "whole" / "sweep.json").read_text())["members"]:
        a, b = (
            weights(tmp_path / "whole" / name / "model.pt"),
            weights(tmp_path / "part" / name / "model.pt"),
        )
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid", "hidden-dim=8,16"], "shared by all members"),
        (["--grid", "beta"], "KEY=V1,V2"),
        (["--grid", "beta=1,1"], "repeats"),
        (["--grid", "beta=1,x"], "floats"),
        (["--grid", "beta=1,2", "--beta", "3"], "both given"),
        (["--grid", "beta=1,2", "--prior", "mixture"], "MixturePrior"),
        (["--grid", "seed=0,1", "--binarize", "dynamic"], "one seed at a time"),
        ([], "at least one --grid"),
    ],
)
def test_bad_sweeps_are_refused_in_one_line(
    data_dir: Path,
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sweep(data_dir, tmp_path / "s", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()  # nothing written for a refused sweep


def test_a_finished_sweep_is_not_overwritten(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep(data_dir, tmp_path / "s", "--grid", "beta=1,2", "--epochs", "1") == 0
    before = (tmp_path / "s" / "beta-1" / "model.pt").read_bytes()
    assert sweep(data_dir, tmp_path / "s", "--grid", "beta=1,2", "--epochs", "1") == 1
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / "s" / "beta-1" / "model.pt").read_bytes() == before
