"""The command line's model families, objectives, data sets and samplers, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchvae.cli import _families, main
from torchvae.io.serialization import load_model
from torchvae.models.hierarchical import HierarchicalVAE
from torchvae.models.vae import VAE
from torchvae.models.vqvae import VQVAE
from torchvae.samplers import GaussianMixtureSampler

pytestmark = pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning")
RUN = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--latent-dim", "2"]


@pytest.fixture
def grey(tmp_path: Path) -> Path:
    """40 random 8x8 grey images in an .npy file (``file:`` data, a 10% test split)."""
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8))
    return path


@pytest.fixture
def colour(tmp_path: Path) -> Path:
    path = tmp_path / "colour.npy"
    np.save(path, np.random.default_rng(1).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    return path


def run(out: Path, data: Path | str, *extra: str) -> int:
    spec = data if isinstance(data, str) else f"file:{data}"
    return main(["train", "--dataset", spec, "--out-dir", str(out), *RUN, *extra])


def evaluate(out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--k", "4", "--json", "--device", "cpu"]) == 0
    found: dict[str, float] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return found


def test_a_residual_vae_with_a_discretized_likelihood_reports_bits_per_dim(
    colour: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "resnet"
    flags = ["--model", "resnet", "--channels", "4", "--blocks", "1"]
    assert run(out, colour, *flags, "--likelihood", "discretized-logistic") == 0
    model = load_model(out / "model.pt")
    assert isinstance(model, VAE) and type(model.likelihood).__name__ == "DiscretizedLogistic"
    found = evaluate(out, capsys)
    # a discrete likelihood: bits/dim are the NLL's, nothing added
    assert found["bits_per_dim"] == pytest.approx(found["nll"] / (192 * np.log(2)))
    assert (out / "samples.png").is_file()


def test_a_density_on_dequantized_data_gets_the_correction(
    colour: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deq"
    flags = ["--model", "conv", "--channels", "4", "--likelihood", "gaussian", "--dequantize"]
    assert run(out, colour, *flags) == 0
    found = evaluate(out, capsys)
    assert found["bits_per_dim"] == pytest.approx(found["nll"] / (192 * np.log(2)) + 8.0)
    capsys.readouterr()  # a discrete likelihood refuses dequantized data
    flags[-2:] = ["discretized-logistic", "--dequantize"]
    assert run(tmp_path / "no", colour, *flags) == 1
    assert "dequantize" in capsys.readouterr().err


def test_hierarchical_model_with_an_importance_weighted_objective(
    grey: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hier"
    flags = ["--model", "hierarchical", "--latent-dims", "3,2", "--hidden-dim", "8"]
    assert run(out, grey, *flags, "--objective", "miwae", "--objective-param", "k=3") == 0
    model = load_model(out / "model.pt")
    assert isinstance(model, HierarchicalVAE) and model.latent_dims == (3, 2)
    saved = json.loads((out / "config.json").read_text())["settings"]
    assert saved["objective"] == "miwae" and saved["objective_params"] == {"k": 3}
    assert np.isfinite(evaluate(out, capsys)["nll"])


@pytest.mark.parametrize(
    "objective, params",
    [
        ("factorvae", ["hidden_features=[8]"]),
        ("btcvae", []),
        ("dip-ii", []),
        ("infovae", []),
        ("dreg", ["k=2"]),
    ],
)
def test_every_objective_trains_from_the_command_line(
    objective: str, params: list[str], grey: Path, tmp_path: Path
) -> None:
    extra = [a for p in params for a in ("--objective-param", p)]
    out = tmp_path / objective
    assert run(out, grey, "--hidden-dim", "8", "--objective", objective, *extra) == 0
    assert (out / "model.pt").is_file()


def test_a_vq_vae_trains_fits_its_code_prior_and_samples(
    grey: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vq"
    flags = ["--model", "vqvae", "--objective", "vq", "--channels", "4,8", "--codebook-size", "8"]
    assert run(out, grey, *flags, "--code-prior-epochs", "1") == 0
    model = load_model(out / "model.pt")
    assert isinstance(model, VQVAE) and model.can_sample
    assert "perplexity" in evaluate(out, capsys)
    png = tmp_path / "vq.png"
    assert main(["sample", "--checkpoint", str(out), "--n", "4", "--out", str(png)]) == 0
    assert png.is_file()


def test_a_fitted_sampler_is_saved_and_drawn_from(grey: Path, tmp_path: Path) -> None:
    out = tmp_path / "gmm"
    assert (
        run(out, grey, "--hidden-dim", "8", "--fit-sampler", "gmm", "--sampler-components", "2")
        == 0
    )
    model = load_model(out / "model.pt")
    assert isinstance(model.sampler, GaussianMixtureSampler)
    png = tmp_path / "s.png"
    assert main(["sample", "--checkpoint", str(out), "--sampler", "fitted", "--out", str(png)]) == 0
    plain = tmp_path / "plain"
    assert run(plain, grey, "--hidden-dim", "8") == 0
    assert main(["sample", "--checkpoint", str(plain), "--sampler", "fitted"]) == 1


def test_generated_sprites_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_families, "SPRITES", 80)
    out = tmp_path / "sprites"
    assert run(out, "sprites", "--model", "conv", "--channels", "4", "--max-batches", "2") == 0
    assert json.loads((out / "config.json").read_text())["image_shape"] == [1, 64, 64]


def test_wrong_combinations_are_one_line_errors(
    grey: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "a", grey, "--objective", "vq") == 1
    assert "--model vqvae" in capsys.readouterr().err
    assert run(tmp_path / "b", grey, "--objective", "iwae", "--objective-param", "bogus=1") == 1
    assert "--objective iwae" in capsys.readouterr().err
    assert run(tmp_path / "c", grey, "--objective", "capacity", "--warmup-epochs", "1") == 1
    assert "beta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(tmp_path / "d", grey, "--objective-param", "not a pair")
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "imagenet", "--out-dir", str(tmp_path / "e")])
    assert "unknown data set" in capsys.readouterr().err
