"""What ``torchvae train`` builds beyond the MLP/conv VAE: data sets, model families, objectives.

The run's settings (``DEFAULTS``) name each part; these functions turn the names into the
library's objects, and an objective's constructor error into a one-line :class:`CLIError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.images import ImageSplit, load_image_data, split_indices
from ..data.loader import Binarize, TensorLoader
from ..data.mnist import load_dataset, mnist_loaders
from ..data.sprites import load_sprites
from ..data.streaming import StreamLoader
from ..likelihoods import DiscretizedLogistic, DiscretizedLogisticMixture, Likelihood
from ..models.codebook import Codebook
from ..models.hierarchical import HierarchicalVAE
from ..models.resnet import resnet_vae
from ..models.vae import VAE
from ..models.vqnets import VQDecoder, VQEncoder
from ..models.vqvae import VQVAE
from ..objectives.capacity import CapacityLoss
from ..objectives.dipvae import DIPVAELoss
from ..objectives.factorvae import FactorVAELoss
from ..objectives.iwae import CIWAELoss, DReGIWAELoss, MIWAELoss, PIWAELoss
from ..objectives.losses import ELBOLoss, IWAELoss
from ..objectives.mmd import InfoVAELoss, WAELoss
from ..objectives.tcvae import BetaTCVAELoss
from ..objectives.vq import VQLoss
from ..samplers.fit import fit_gmm_sampler
from ..training._optimizers import aux_parameters
from ..training.vq_fit import fit_code_prior
from ._parser import CLIError

__all__ = [
    "FAMILIES",
    "OBJECTIVES",
    "Loaders",
    "after_training",
    "build_family",
    "build_objective",
    "likelihood_for",
    "load_loaders",
    "main_parameters",
    "test_split",
]

FAMILIES = ("mlp", "conv", "resnet", "hierarchical", "vqvae")
FLAT = ("mlp", "hierarchical")  # families that take flat vectors
SPRITES = 65_536  # generated sprites a run trains and tests on (10% held out)
Loaders = tuple[Any, Any, tuple[int, int, int]]


def load_loaders(
    settings: Mapping[str, Any],
    root: Path | None,
    *,
    download: bool,
    device: torch.device,
    max_batches: int | None,
) -> Loaders:
    """The run's training and test loaders, and the shape ``(C, H, W)`` of an image."""
    spec, flatten = settings["dataset"], settings["model"] in FLAT
    binarize, dequantize = settings["binarize"], bool(settings.get("dequantize", False))
    if spec in ("mnist", "fashion-mnist") and not dequantize:
        train, test = mnist_loaders(
            root=root,
            dataset=spec,
            batch_size=settings["batch_size"],
            flatten=flatten,
            binarize=binarize,
            seed=settings["seed"],
            download=download,
            device=device,
            max_batches=max_batches,
        )
        return train, test, (1, *train.images.shape[1:])
    parts = [_split(spec, root, split, download) for split in ("train", "test")]
    shape = parts[0].shape
    loaders = [
        _loader(part, settings, train=i == 0, device=device, max_batches=max_batches)
        for i, part in enumerate(parts)
    ]
    return loaders[0], loaders[1], shape


def test_split(
    spec: str, root: Path | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The test images (``(N, C, H, W)``, or MNIST's ``(N, H, W)``) and their labels."""
    if spec in ("mnist", "fashion-mnist"):
        return load_dataset(spec, root, train=False, download=download)
    part = _split(spec, root, "test", download)
    if part.images is None:
        raise CLIError(f"{part.name} does not fit in memory; evaluate it with the Python API")
    return part.images, part.labels


def _split(spec: str, root: Path | None, split: str, download: bool) -> ImageSplit:
    if spec == "sprites":
        images, factors = load_sprites(n=SPRITES, seed=0)
        train, test = split_indices(SPRITES, 0.1, seed=0)
        keep = train if split == "train" else test
        return ImageSplit(f"sprites ({split})", (1, 64, 64), images[keep], factors[keep, 0])
    try:
        return load_image_data(spec, root, split, download=download)  # type: ignore[arg-type]
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def _loader(
    part: ImageSplit,
    settings: Mapping[str, Any],
    *,
    train: bool,
    device: torch.device,
    max_batches: int | None,
) -> Any:
    flatten, dequantize = settings["model"] in FLAT, bool(settings.get("dequantize", False))
    batch = settings["batch_size"] if train else max(settings["batch_size"], 100)
    seed = settings["seed"]
    if part.images is None:
        assert part.dataset is not None
        return StreamLoader(
            part.dataset,
            batch,
            shuffle=train,
            seed=seed,
            flatten=flatten,
            dequantize=dequantize,
            max_batches=max_batches if train else None,
        )
    binarize: Binarize = settings["binarize"]
    if not train and binarize == "dynamic":
        binarize = "static"  # one fixed test set
    return TensorLoader(
        part.images,
        part.labels,
        batch,
        shuffle=train,
        seed=seed,
        flatten=flatten,
        binarize=binarize,
        dequantize=dequantize,
        device=device,
        max_batches=max_batches if train else None,
    )


def likelihood_for(name: str) -> Likelihood | None:
    """The discretized likelihoods of 8-bit images; ``None`` for the others' names."""
    if name == "discretized-logistic":
        return DiscretizedLogistic()
    if name == "discretized-mixture":
        return DiscretizedLogisticMixture()
    return None


def build_family(
    settings: Mapping[str, Any], shape: Sequence[int], parts: Mapping[str, Any]
) -> nn.Module | None:
    """The ``resnet``, ``hierarchical`` or ``vqvae`` model; ``None`` for ``mlp``/``conv``."""
    family, latent = settings["model"], settings["latent_dim"]
    if family == "resnet":
        return resnet_vae(
            tuple(shape),
            latent,
            parts["likelihood"],
            tuple(settings["channels"]),
            settings.get("blocks", 2),
            prior=parts["prior"],
            posterior=parts["posterior"],
        )
    if family == "hierarchical":
        dims = settings.get("latent_dims")
        if dims is None:  # Burda et al.'s two layers
            return HierarchicalVAE.burda(
                math.prod(shape), likelihood=parts["likelihood"], prior=parts["prior"]
            )
        hidden = settings.get("hidden_dim", 400)
        sizes = hidden if isinstance(hidden, list) else [hidden]
        return HierarchicalVAE(
            math.prod(shape),
            dims,
            [sizes] * len(dims),
            likelihood=parts["likelihood"],
            prior=parts["prior"],
        )
    if family == "vqvae":
        channels = tuple(settings["channels"])
        dim = 16
        return VQVAE(
            VQEncoder(tuple(shape), channels, dim),
            VQDecoder(tuple(shape), channels[::-1], dim),
            Codebook(settings.get("codebook_size", 128), dim, restart_after=100),
            likelihood=parts["likelihood"],
        )
    return None


_Factory = Callable[[dict[str, Any], nn.Module, int], nn.Module]
OBJECTIVES: dict[str, _Factory] = {
    "elbo": lambda p, m, n: ELBOLoss(**p),
    "iwae": lambda p, m, n: IWAELoss(**p),
    "miwae": lambda p, m, n: MIWAELoss(**p),
    "ciwae": lambda p, m, n: CIWAELoss(**p),
    "piwae": lambda p, m, n: PIWAELoss(m, **p),  # type: ignore[arg-type]
    "dreg": lambda p, m, n: DReGIWAELoss(m, **p),  # type: ignore[arg-type]
    "capacity": lambda p, m, n: CapacityLoss(**p),
    "btcvae": lambda p, m, n: BetaTCVAELoss(n, **p),
    "factorvae": lambda p, m, n: FactorVAELoss(int(getattr(m, "latent_dim", 0)), **p),
    "dip-i": lambda p, m, n: DIPVAELoss("i", **p),
    "dip-ii": lambda p, m, n: DIPVAELoss("ii", **p),
    "infovae": lambda p, m, n: InfoVAELoss(**p),
    "wae": lambda p, m, n: WAELoss(**p),
    "vq": lambda p, m, n: VQLoss(**p),
}


def build_objective(settings: Mapping[str, Any], model: nn.Module, dataset_size: int) -> nn.Module:
    """The objective ``settings["objective"]`` names, with ``--objective-param`` values."""
    name = settings.get("objective", "elbo")
    params = dict(settings.get("objective_params") or {})
    if name == "elbo":
        params = {"beta": settings["beta"], "free_bits": settings["free_bits"], **params}
    if isinstance(model, VQVAE) != (name == "vq"):
        raise CLIError(
            "--model vqvae trains with --objective vq, and --objective vq needs --model vqvae"
        )
    try:
        return OBJECTIVES[name](params, model, dataset_size)
    except (TypeError, ValueError) as e:
        raise CLIError(f"--objective {name}: {e}") from None


def main_parameters(model: nn.Module, loss: nn.Module) -> list[nn.Parameter]:
    """What the main optimizer trains: the model's and the loss's parameters, once each,
    without the groups the objective trains with optimizers of their own."""
    aux = {id(p) for group in aux_parameters(loss).values() for p in group}
    seen: set[int] = set()
    out = []
    for p in (*model.parameters(), *loss.parameters()):
        if id(p) not in seen and id(p) not in aux:
            seen.add(id(p))
            out.append(p)
    return out


def after_training(
    model: nn.Module, settings: Mapping[str, Any], train: Any, test: Any, device: torch.device
) -> None:
    """The second stages a run asks for: a VQ-VAE's prior over codes, an ex-post sampler."""
    if isinstance(model, VQVAE) and settings.get("code_prior_epochs", 0) > 0:
        print(f"fitting the prior over codes ({settings['code_prior_epochs']} epochs)")
        fit_code_prior(model, train, test, epochs=settings["code_prior_epochs"], device=device)
    if settings.get("fit_sampler", "none") == "gmm":
        if not isinstance(model, VAE) or isinstance(model, HierarchicalVAE):
            raise CLIError("--fit-sampler gmm needs a one-layer VAE (--model mlp, conv or resnet)")
        k = settings.get("sampler_components", 10)
        generator = torch.Generator(device=device).manual_seed(settings["seed"])
        model.sampler = fit_gmm_sampler(model, train, k, generator=generator)
        print(f"fitted a {k}-component Gaussian mixture to the aggregate posterior")
