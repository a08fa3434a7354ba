"""Models, run files and pictures: what the commands build, read and write."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..callbacks import Callback
from ..io._atomic import atomic_write, check_file
from ..io.checkpoint import CheckpointError, find_last_checkpoint, load_checkpoint
from ..io.serialization import (
    SerializationError,
    load_model,
    model_from_config,
    read_metadata,
)
from ..likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from ..models.conditional import ConditionalVAE
from ..models.decoders import ConvDecoder, Decoder
from ..models.encoders import ConvEncoder, Encoder
from ..models.vae import VAE
from ..posteriors import DiagonalGaussian, FlowPosterior
from ..priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior
from ._families import build_family, likelihood_for
from ._parser import DEFAULTS, NUM_CLASSES, CLIError

__all__ = [
    "RunInfo",
    "build_model",
    "check_image_path",
    "draw",
    "find_checkpoint",
    "image_shape_of",
    "legacy_state",
    "likelihood_named",
    "load_run",
    "parts_named",
    "resolve_device",
    "run_of_checkpoint",
    "run_of_metadata",
    "save_grid",
    "save_grid_for",
    "with_likelihood",
    "write_json",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available here (use --device cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise CLIError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available here (use --device cpu)")
    return device


def parts_named(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The likelihood, prior and posterior that ``settings`` name."""
    k, name = settings.get("prior_components"), settings.get("prior", "standard")
    prior: Prior = StandardNormal()
    if name == "mixture":
        prior = MixturePrior(k or 10)
    elif name == "vamp":
        prior = VampPrior(k or 500)
    elif name == "flow":
        prior = FlowPrior()
    posterior = FlowPosterior() if settings.get("posterior") == "flow" else DiagonalGaussian()
    return {
        "likelihood": likelihood_named(settings["likelihood"]),
        "prior": prior,
        "posterior": posterior,
    }


def build_model(settings: Mapping[str, Any], image_shape: Sequence[int]) -> nn.Module:
    """The VAE (or conditional VAE) that ``settings`` (see ``DEFAULTS``) describe."""
    shape = tuple(image_shape)
    dim, latent = math.prod(shape), settings["latent_dim"]
    parts = parts_named(settings)
    family = build_family(settings, shape, parts)
    if family is not None:
        if settings["conditional"]:
            raise CLIError(f"--conditional is for --model mlp or conv, not {settings['model']}")
        return family
    if settings["model"] == "conv":
        channels = tuple(settings["channels"])
        if settings["conditional"]:
            return ConditionalVAE.conv(latent, NUM_CLASSES, shape, channels, **parts)
        return VAE(
            ConvEncoder(latent, shape, channels),
            ConvDecoder(latent, shape, channels[::-1]),
            **parts,
        )
    hidden = settings["hidden_dim"]
    if settings["conditional"]:
        return ConditionalVAE.mlp(dim, hidden, latent, NUM_CLASSES, **parts)
    return VAE(Encoder(dim, hidden, latent), Decoder(latent, hidden, dim), **parts)


def likelihood_named(name: str) -> Likelihood:
    discretized = likelihood_for(name)
    if discretized is not None:
        return discretized
    if name == "gaussian":
        return Gaussian(scale=0.1, learn_scale=True)
    return ContinuousBernoulli() if name == "continuous-bernoulli" else Bernoulli()


class RunInfo(Callback):
    """Stores the run's settings and model config (JSON) inside every checkpoint."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = dict(run)

    def state_dict(self) -> dict[str, Any]:
        return {"run": json.dumps(self.run)}


def write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())


def run_of_checkpoint(state: Mapping[str, Any]) -> dict[str, Any] | None:
    for entry in state.get("callbacks", {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("run"), str):
            run: dict[str, Any] = json.loads(entry["run"])
            return run
    return None


def find_checkpoint(path: Path) -> Path:
    """A file as given; in a folder, its model.pt or its newest checkpoint."""
    if not path.is_dir():
        try:
            return check_file(path, "checkpoint")
        except OSError as e:  # names a missing file, a dangling link, a loop of links
            raise CLIError(str(e)) from None
    if (path / "model.pt").is_file():
        return path / "model.pt"
    found = find_last_checkpoint(path) or find_last_checkpoint(path / "checkpoints")
    if found is None:
        raise CLIError(f"{path} holds no model.pt and no epoch-*.pt checkpoint")
    return found


def run_of_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The run info (as in checkpoints) that ``torchvae train`` put in a model's metadata."""
    settings = metadata.get("settings")
    if not isinstance(settings, dict):
        return {}
    run: dict[str, Any] = {"settings": {**DEFAULTS, **settings}}
    if "image_shape" in metadata:
        run["image_shape"] = metadata["image_shape"]
    return run


def load_run(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model on the CPU, run info or {})`` from a model file or a checkpoint.

    The run info comes from the file itself: a model file's metadata, a checkpoint's
    run settings; never from a ``config.json`` beside it, which may be another run's.
    """
    path = find_checkpoint(path)
    try:
        model = load_model(path, map_location="cpu")
    except SerializationError as model_error:
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            if e.recognized:  # a checkpoint, damaged: its own message names a good one
                raise CLIError(str(e)) from e
            hint = (
                ""
                if e.last_good is None
                else f"; the newest good checkpoint beside it is {e.last_good}"
            )
            raise CLIError(
                f"{path} is neither a torchvae model file nor a training checkpoint: "
                f"{model_error}{hint}"
            ) from model_error
        except Exception:
            raise CLIError(
                f"{path} is neither a torchvae model file nor a training checkpoint: {model_error}"
            ) from model_error
        run = run_of_checkpoint(state)
        if run is None:
            raise CLIError(
                f"{path} is a training checkpoint without the model's config (not written by "
                f"'torchvae train'); save the model with torchvae.io.serialization.save_model"
            ) from None
        model = model_from_config(with_likelihood(run))
        model.load_state_dict(legacy_state(state))
        return model, run
    try:
        metadata = read_metadata(path)
    except SerializationError as e:  # pragma: no cover (load_model read it a moment ago)
        raise CLIError(str(e)) from e
    return model, run_of_metadata(metadata)


def with_likelihood(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's model config; runs from before the model held its likelihood name it in
    their settings (the loss held it then)."""
    config = dict(run["model"])
    if "likelihood" not in config:
        likelihood = likelihood_named(run.get("settings", DEFAULTS)["likelihood"])
        config["likelihood"] = {"type": type(likelihood).__name__, **likelihood.config()}
    return config


def legacy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The model's weights, with a learned likelihood scale the loss held before it moved
    into the model."""
    weights = dict(state["model"])
    for key, value in state.get("loss", {}).items():
        if key.startswith("likelihood.") and key not in weights:
            weights[key] = value
    return weights


def image_shape_of(model: nn.Module, run: Mapping[str, Any]) -> tuple[int, ...]:
    if "image_shape" in run:
        return tuple(run["image_shape"])
    shape = tuple(getattr(model.decoder, "output_shape", ()))
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) == 1 and side * side == shape[0]:
        return (1, side, side)
    if len(shape) == 3:
        return shape
    raise CLIError(f"cannot tell the image shape of a decoder with output shape {shape}")


@torch.no_grad()
def draw(
    model: Any, n: int, labels: Tensor | None, seed: int, t: float, sampler: bool = False
) -> Tensor:
    """``n`` images: the mean of ``p(x|z)`` for ``z ~ p(z)`` at temperature ``t``, clamped to
    the likelihood's data range for the picture; ``sampler``: z from ``model.sampler``."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    extra: dict[str, Any] = {} if labels is None else {"y": labels.to(device)}
    if sampler:
        extra["sampler"] = model.sampler
    images: Tensor = model.sample(n, generator=gen, temperature=t, **extra)
    low, high = getattr(model.likelihood, "data_range", None) or (0.0, 1.0)
    return ((images.float() - low) / (high - low)).clamp(0, 1).cpu()


def save_grid(images: Tensor, shape: Sequence[int], path: Path, nrow: int) -> None:
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.reshape(-1, *shape), str(path), nrow=nrow, padding=2, pad_value=1.0)


def save_grid_for(
    model: nn.Module, settings: Mapping[str, Any], shape: Sequence[int], path: Path
) -> None:
    labels = torch.arange(100) % NUM_CLASSES if settings["conditional"] else None
    n, nrow = (100, NUM_CLASSES) if labels is not None else (64, 8)
    fitted = getattr(model, "sampler", None) is not None
    save_grid(draw(model, n, labels, settings["seed"], 1.0, fitted), shape, path, nrow)


def check_image_path(path: Path) -> None:
    if path.is_dir():
        raise CLIError(
            f"--out {path} is a folder: give the image file to write, e.g. "
            f"--out {path / 'samples.png'}"
        )
    from PIL import Image

    known = Image.registered_extensions()
    if path.suffix.lower() not in known:
        what = f"its extension {path.suffix!r}" if path.suffix else "it has no extension, which"
        raise CLIError(
            f"--out {path}: {what} names no image format; end the name in .png (or .jpg, .bmp, ...)"
        )
