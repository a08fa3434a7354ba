"""``torchvae train --config``: options from YAML, TOML or JSON; flags win; runs repeat."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from test_cli import TINY, data_dir  # noqa: F401 (fixtures)
from torchvae.cli import main
from torchvae.cli._config import read_config
from torchvae.cli._parser import CLIError
from torchvae.io.serialization import load_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning"),
    pytest.mark.usefixtures("offline"),
]
HAS_YAML = importlib.util.find_spec("yaml") is not None
HAS_TOML = any(importlib.util.find_spec(m) is not None for m in ("tomllib", "tomli"))
NEEDS_TOML = pytest.mark.skipif(not HAS_TOML, reason="needs tomllib (Python 3.11+) or tomli")


def _config(out: Path) -> dict[str, object]:
    value: dict[str, object] = json.loads((out / "config.json").read_text())
    return value


def test_a_run_repeated_from_its_config_json_is_the_same_run(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = tmp_path / "first"
    argv = ["train", "--data-dir", str(data_dir), "--out-dir", str(first), *TINY]
    assert main([*argv, "--epochs", "2", "--max-batches", "2", "--beta", "0.5"]) == 0
    again = tmp_path / "again"
    assert main(["train", "--config", str(first / "config.json"), "--out-dir", str(again)]) == 0
    assert _config(again) == _config(first)
    assert _config(first)["epochs"] == 2 and _config(first)["max_batches"] == 2
    a = load_model(first / "model.pt").state_dict()
    b = load_model(again / "model.pt").state_dict()
    assert all((a[k] == b[k]).all() for k in a)  # same seed, data and options: same weights


def _write(path: Path, data: Path) -> Path:
    d = str(data)
    if path.suffix == ".toml":
        text = f'data_dir = "{d}"\nlatent_dim = 3\nhidden_dim = [8, 4]\nepochs = 1\n'
        text += 'device = "cpu"\nbatch_size = 4\nconditional = false\nlr = 2e-3\n'
    elif path.suffix == ".json":
        text = json.dumps(
            {"data_dir": d, "latent_dim": 3, "hidden_dim": [8, 4], "epochs": 1, "device": "cpu"}
            | {"batch_size": 4, "conditional": False, "lr": 2e-3}
        )
    else:
        text = f"data_dir: {d}\nlatent_dim: 3\nhidden_dim: [8, 4]\nepochs: 1\ndevice: cpu\n"
        text += "batch_size: 4\nconditional: false\nlr: 2.0e-3\n"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param(".toml", marks=NEEDS_TOML),
        ".json",
        pytest.param(".yaml", marks=pytest.mark.skipif(not HAS_YAML, reason="needs PyYAML")),
    ],
)
def test_file_options_and_flags_over_them(
    suffix: str,
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = _write(tmp_path / f"run{suffix}", data_dir)
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out-dir", str(out), "--latent-dim", "2"]) == 0
    settings = _config(out)["settings"]
    assert isinstance(settings, dict)
    assert settings["latent_dim"] == 2  # the flag wins
    assert settings["hidden_dim"] == [8, 4] and settings["lr"] == 2e-3  # from the file
    assert settings["batch_size"] == 4 and _config(out)["epochs"] == 1


@NEEDS_TOML
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("latent-dim = 3\n", r"unknown option 'latent-dim' \(did you mean 'latent_dim'\?\)"),
        ("latent_dim = 0\n", r"latent_dim: expected an integer >= 1, got '0'"),
        ('model = "transformer"\n', r"model must be one of mlp, conv"),
        ('conditional = "yes"\n', r"conditional must be true or false"),
        ("config = 'other.toml'\n", r"unknown option 'config'"),
        ("latent_dim = \n", r"is not valid TOML"),
        ("settings = 3\n", r"'settings' must be a mapping"),
    ],
)
def test_bad_files_are_one_clear_error(
    text: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "bad.toml" in err
    assert pytest.importorskip("re").search(match, err), err


@NEEDS_TOML
def test_read_config_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(CLIError, match=r"no such file"):
        read_config(tmp_path / "missing.yaml")
    (tmp_path / "run.ini").write_text("[x]\n")
    with pytest.raises(CLIError, match=r"expected a \.yaml, \.yml, \.toml or \.json"):
        read_config(tmp_path / "run.ini")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(CLIError, match=r"must hold a mapping"):
        read_config(tmp_path / "list.json")
    (tmp_path / "empty.toml").write_text("")
    assert read_config(tmp_path / "empty.toml") == {}


def test_a_config_json_that_records_another_model_is_refused(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = tmp_path / "first"
    argv = ["train", "--data-dir", str(data_dir), "--out-dir", str(first), *TINY]
    assert main([*argv, "--epochs", "1", "--max-batches", "1"]) == 0
    config = _config(first)
    config["model"] = {"type": "VAE", "edited": True}
    (tmp_path / "edited.json").write_text(json.dumps(config))
    args = ["train", "--config", str(tmp_path / "edited.json"), "--out-dir", str(tmp_path / "b")]
    assert main(args) == 1
    assert "records model" in capsys.readouterr().err


@NEEDS_TOML
def test_key_value_options_take_a_table(tmp_path: Path) -> None:
    import argparse

    from torchvae.cli._config import apply_config
    from torchvae.cli._parser import build_parser

    path = tmp_path / "run.toml"
    path.write_text('objective = "iwae"\n[objective_params]\nk = 5\nname = "x"\n')
    parser = build_parser()
    argv = ["train", "--config", str(path)]
    args = apply_config(parser, argv, parser.parse_args(argv))
    assert isinstance(args, argparse.Namespace)
    assert args.objective == "iwae" and dict(args.objective_params) == {"k": 5, "name": "x"}
