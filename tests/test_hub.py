"""The Hugging Face Hub methods, offline: a local folder, and a repository in the cache."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from torchvae.io.serialization import SerializationError, read_metadata
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE

if importlib.util.find_spec("huggingface_hub") is None:
    pytest.skip("needs huggingface_hub (pip install torchvae[hub])", allow_module_level=True)

import huggingface_hub
from huggingface_hub import constants

from torchvae import hub


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network: the hub client's offline mode, and a private cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _model() -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(12, 8, 3), Decoder(3, 8, 12))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


TRAINING = {"dataset": "fashion-mnist", "epochs": 20, "latent_dim": 3}
EVALUATION = {"test_elbo": 241.5, "test_nll_iwae_k1000": 235.2, "bits_per_dim": 0.4328}


def test_save_pretrained_writes_the_model_config_and_card(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "m", training_config=TRAINING, evaluation=EVALUATION)
    folder = tmp_path / "m"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["torchvae"]["model"]["type"] == "VAE"
    assert config["training"] == TRAINING and config["evaluation"] == EVALUATION
    assert read_metadata(folder / "model.safetensors") == {
        "training": TRAINING,
        "evaluation": EVALUATION,
    }
    card = huggingface_hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "torchvae" and "vae" in card.data.tags
    for figure in ("`test_nll_iwae_k1000` | 235.2", "`dataset` | fashion-mnist", '"Encoder"'):
        assert figure in card.text, figure
    assert "VAE.from_pretrained(" in card.text


def test_from_pretrained_of_a_folder(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "m")
    _same(model, VAE.from_pretrained(tmp_path / "m"))
    _same(model, hub.from_pretrained(str(tmp_path / "m")))
    cvae = ConditionalVAE.mlp(12, 8, 3, num_classes=4)
    hub.save_pretrained(cvae, tmp_path / "c")
    _same(cvae, VAE.from_pretrained(tmp_path / "c"))  # a conditional VAE is a VAE
    with pytest.raises(SerializationError, match=r"holds a VAE, not a ConditionalVAE"):
        ConditionalVAE.from_pretrained(tmp_path / "m")


def test_from_pretrained_of_a_repository_in_the_cache(tmp_path: Path, offline: Path) -> None:
    """A repository id is read from the Hugging Face cache when offline, never downloaded."""
    model = _model()
    model.save_pretrained(tmp_path / "m", evaluation=EVALUATION)
    commit = "0" * 40
    repo = offline / "models--someone--tiny-vae"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tmp_path / "m", repo / "snapshots" / commit)
    _same(model, VAE.from_pretrained("someone/tiny-vae"))
    with pytest.raises(Exception, match=r"(?i)offline|cannot find|not.*cache|local"):
        VAE.from_pretrained("someone/not-downloaded")


def test_a_folder_without_a_model_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no model\.safetensors"):
        VAE.from_pretrained(tmp_path / "empty")


def test_an_existing_card_is_kept_and_bad_figures_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text("# my own card\n")
    _model().save_pretrained(folder)
    assert (folder / "README.md").read_text() == "# my own card\n"
    with pytest.raises(TypeError, match="JSON values"):
        _model().save_pretrained(tmp_path / "x", evaluation={"nll": object()})


def test_a_missing_hub_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = hub.importlib.import_module

    def absent(name: str, package: str | None = None) -> object:
        if name == "huggingface_hub":
            raise ImportError("No module named 'huggingface_hub'")
        return real(name, package)

    monkeypatch.setattr(hub.importlib, "import_module", absent)
    hub._adapter.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install torchvae\[hub\]"):
            _model().save_pretrained(tmp_path / "m")
    finally:
        monkeypatch.undo()
        hub._adapter.cache_clear()
