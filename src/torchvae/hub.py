r"""Share models on the Hugging Face Hub: ``save_pretrained``, ``from_pretrained``, ``push_to_hub``.

Through ``huggingface_hub``'s :class:`~huggingface_hub.ModelHubMixin`, a model's folder
holds ``model.safetensors`` (what :func:`~torchvae.save_model` writes: weights, JSON
architecture, checksum), ``config.json`` (the architecture, the training config and the
evaluation figures, readable without torchvae) and ``README.md``, a model card with the
architecture, the training config and the evaluation figures. Every
:class:`~torchvae.VAE` has these as methods (``model.save_pretrained(folder)``,
``VAE.from_pretrained(folder_or_repo_id)``, ``model.push_to_hub(repo_id)``); the functions
here take any model :func:`~torchvae.save_model` can write.

Needs ``huggingface_hub``: ``pip install torchvae[hub]``.

Example:
    >>> import tempfile
    >>> from torchvae import VAE, Decoder, Encoder
    >>> folder = tempfile.mkdtemp()
    >>> model = VAE(Encoder(4, 8, 2), Decoder(2, 8, 4))
    >>> model.save_pretrained(folder, evaluation={"test_nll": 80.1})
    >>> sorted(p.name for p in __import__("pathlib").Path(folder).iterdir())
    ['README.md', 'config.json', 'model.safetensors']
    >>> type(VAE.from_pretrained(folder)).__name__
    'VAE'
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .io._format import MapLocation, PathLike, metadata_text
from .io.registry import model_config
from .io.serialization import load_model, read_metadata, save_model

__all__ = ["MODEL_FILE", "from_pretrained", "model_card", "push_to_hub", "save_pretrained"]

MODEL_FILE = "model.safetensors"
"""The model file's name in a folder or repository (the Hub's name for safetensors weights)."""


def _hub() -> Any:
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError as e:
        raise ImportError(
            "sharing models on the Hugging Face Hub needs huggingface_hub: pip install "
            "torchvae[hub] (or pip install huggingface_hub)"
        ) from e


def _table(values: Mapping[str, Any], what: str) -> str:
    if not values:
        return f"No {what} recorded."
    rows = "\n".join(
        f"| `{k}` | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in values.items()
    )
    return f"| {what} | value |\n|---|---|\n{rows}"


def model_card(
    model: nn.Module,
    training_config: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
) -> str:
    """The text of a model card: metadata for the Hub, how to load, architecture, figures.

    Args:
        model: the model.
        training_config: how it was trained (e.g. ``torchvae train``'s settings).
        evaluation: its evaluation figures (e.g. ``torchvae eval --json``'s output).
        repo_id: the repository, for the loading snippet.

    Returns:
        Markdown with a YAML header (``library_name: torchvae``, tags).
    """
    name = type(model).__name__
    where = repo_id or "FOLDER_OR_REPO_ID"
    return f"""---
library_name: torchvae
tags:
- torchvae
- vae
- variational-autoencoder
- pytorch
---

# {repo_id.split("/")[-1] if repo_id else f"A torchvae {name}"}

A {name} (a variational autoencoder) saved with
[torchvae](https://pypi.org/project/torchvae/). The weights are in `{MODEL_FILE}` with the
architecture as JSON: no pickled code is loaded.

## Use

```python
from torchvae import {name}

model = {name}.from_pretrained("{where}").eval()
```

## Architecture

```json
{json.dumps(model_config(model), indent=2)}
```

## Training

{_table(dict(training_config or {}), "setting")}

## Evaluation

{_table(dict(evaluation or {}), "metric")}
"""


@functools.cache
def _adapter() -> Any:
    hf = _hub()
    mixin: Any = hf.ModelHubMixin

    class TorchvaeModel(mixin, library_name="torchvae", tags=["torchvae", "vae"]):  # type: ignore[misc,call-arg]
        """A torchvae model seen by the Hub's mixin (one model file, one config, one card)."""

        def __init__(self, model: nn.Module, metadata: dict[str, Any] | None = None) -> None:
            self.model, self.metadata = model, dict(metadata or {})

        def _save_pretrained(self, save_directory: Path) -> None:
            save_model(self.model, save_directory / MODEL_FILE, metadata=self.metadata)
            config = {"torchvae": {"model": model_config(self.model)}, **self.metadata}
            (save_directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

        def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
            text = model_card(
                self.model,
                self.metadata.get("training"),
                self.metadata.get("evaluation"),
                kwargs.get("repo_id"),
            )
            return hf.ModelCard(text)

        @classmethod
        def _from_pretrained(
            cls,
            *,
            model_id: str,
            revision: str | None,
            cache_dir: str | Path | None,
            force_download: bool,
            local_files_only: bool,
            token: str | bool | None,
            map_location: MapLocation = "cpu",
            **kwargs: Any,
        ) -> Any:
            if Path(model_id).is_dir():
                path = Path(model_id) / MODEL_FILE
                if not path.is_file():
                    raise FileNotFoundError(f"{model_id} holds no {MODEL_FILE}")
            else:
                path = Path(
                    hf.hf_hub_download(
                        repo_id=model_id,
                        filename=MODEL_FILE,
                        revision=revision,
                        cache_dir=cache_dir,
                        force_download=force_download,
                        local_files_only=local_files_only,
                        token=token,
                    )
                )
            return cls(load_model(path, map_location), read_metadata(path))

    return TorchvaeModel


def _metadata(
    training_config: Mapping[str, Any] | None, evaluation: Mapping[str, Any] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if training_config is not None:
        metadata["training"] = dict(training_config)
    if evaluation is not None:
        metadata["evaluation"] = dict(evaluation)
    metadata_text(metadata)  # JSON values only, within a model file's bounds
    return metadata


def save_pretrained(
    model: nn.Module,
    folder: PathLike,
    *,
    training_config: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    push_to_hub: bool = False,
    repo_id: str | None = None,
    **push_kwargs: Any,
) -> str | None:
    """Write ``model`` to ``folder`` as the Hub expects (model file, config.json, model card).

    Args:
        model: a model :func:`~torchvae.save_model` can write.
        folder: created if absent; an existing ``README.md`` is kept.
        training_config: how it was trained, shown in the card and kept in the model file.
        evaluation: its evaluation figures (name -> number), likewise.
        push_to_hub: also upload the folder to ``repo_id`` (see :func:`push_to_hub`).
        repo_id: the repository for ``push_to_hub`` (default: the folder's name).
        **push_kwargs: for :func:`push_to_hub` (``private``, ``token``, ...).

    Returns:
        The commit's URL when pushed, else ``None``.

    Raises:
        ImportError: huggingface_hub is not installed (``pip install torchvae[hub]``).
        TypeError: ``model`` cannot be rebuilt from a config, or the figures are not JSON.
    """
    hub = _adapter()(model, _metadata(training_config, evaluation))
    url: str | None = hub.save_pretrained(
        Path(folder), push_to_hub=push_to_hub, repo_id=repo_id, **push_kwargs
    )
    return url


def from_pretrained(
    folder_or_repo_id: PathLike,
    *,
    map_location: MapLocation = "cpu",
    expected_type: type[nn.Module] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Load a model saved by :func:`save_pretrained`: from a folder, or a Hub repository.

    A repository's file is downloaded once into the Hugging Face cache; with
    ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) only the cache is read.

    Args:
        folder_or_repo_id: a local folder, or a repository id (``"user/name"``).
        map_location: as for :func:`~torchvae.load_model` (default: the CPU).
        expected_type: if given, the model must be of this class (or a subclass).
        **kwargs: for the download (``revision``, ``cache_dir``, ``token``,
            ``force_download``, ``local_files_only``).

    Raises:
        ImportError: huggingface_hub is not installed (``pip install torchvae[hub]``).
        FileNotFoundError: the folder holds no ``model.safetensors``.
        SerializationError: the model file cannot be read (see :func:`~torchvae.load_model`)
            or holds a model that is not an ``expected_type``.
    """
    hub = _adapter().from_pretrained(str(folder_or_repo_id), map_location=map_location, **kwargs)
    model: nn.Module = hub.model
    if expected_type is not None and not isinstance(model, expected_type):
        from .io._format import SerializationError

        raise SerializationError(
            f"{folder_or_repo_id} holds a {type(model).__name__}, not a "
            f"{expected_type.__name__}: load it with torchvae.hub.from_pretrained"
        )
    return model


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    training_config: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Upload ``model`` (model file, config.json, model card) to the Hub repository ``repo_id``.

    The repository is created if absent; log in first (``hf auth login``) or pass ``token``.

    Args:
        model: a model :func:`~torchvae.save_model` can write.
        repo_id: ``"user/name"`` or ``"organization/name"``.
        training_config: how it was trained (in the card and the model file).
        evaluation: its evaluation figures (likewise).
        **kwargs: for ``ModelHubMixin.push_to_hub`` (``private``, ``token``, ``branch``,
            ``commit_message``, ``create_pr``).

    Returns:
        The commit's URL.
    """
    hub = _adapter()(model, _metadata(training_config, evaluation))
    url: str = hub.push_to_hub(repo_id, model_card_kwargs={"repo_id": repo_id}, **kwargs)
    return url
