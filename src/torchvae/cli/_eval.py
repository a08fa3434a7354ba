"""``torchvae eval``."""

from __future__ import annotations

import argparse
import json
import warnings

import torch

from ..data.loader import Binarize, TensorLoader
from ..diagnostics import PosteriorCollapseWarning, latent_report, warn_if_collapsed
from ..likelihoods import Likelihood
from ..models.vqvae import VQVAE
from ..objectives.importance import bits_per_dim, log_likelihood
from ..objectives.losses import ELBOLoss
from ..objectives.vq import VQLoss
from ..training.trainer import Trainer
from ._families import FLAT, test_split
from ._parser import DEFAULTS, CLIError
from ._runs import load_run, resolve_device

__all__ = ["eval_command"]


def eval_command(args: argparse.Namespace) -> None:
    model, run = load_run(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device).eval()
    settings = run.get("settings", DEFAULTS)
    if args.dataset is None and "settings" not in run:
        raise CLIError(
            f"{args.checkpoint} does not say which data set the model was trained on (it "
            f"was saved without torchvae train's metadata); pass --dataset mnist or "
            f"--dataset fashion-mnist"
        )
    dataset = args.dataset or settings["dataset"]
    images, targets = test_split(dataset, args.data_dir, args.download)
    binarize: Binarize = "none" if settings["binarize"] == "none" else "static"
    dequantize = bool(settings.get("dequantize", False))
    full = TensorLoader(images, targets, 1, seed=settings["seed"], binarize=binarize)
    n = min(args.max_examples or full.dataset_size, full.dataset_size)
    flatten = settings["model"] in FLAT
    labels = None if targets is None else targets[:n]
    data = TensorLoader(
        full.images[:n], labels, args.batch_size, device=device, flatten=flatten,
        dequantize=dequantize and images.dtype == torch.uint8, seed=settings["seed"],
    )  # fmt: skip
    torch.manual_seed(args.seed)
    if isinstance(model, VQVAE):
        _eval_vq(args, model, data, dataset, n, device)
        return
    # the plain ELBO (beta 1, no free bits) with the model's own likelihood and prior
    elbo = Trainer(model, ELBOLoss(), device=device).evaluate(data)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    conditional = bool(getattr(model, "is_conditional", False))
    total, dims = 0.0, 1
    for batch in data:
        x, y = batch if isinstance(batch, tuple) else (batch, None)
        extra = {"y": y} if conditional else {}
        ll = log_likelihood(model, x, args.k, None, args.chunk_size, gen, **extra)
        total, dims = total - float(ll.sum()), x[0].numel()
    nll = total / n
    found = getattr(model, "likelihood", None)
    likelihood = found if isinstance(found, Likelihood) else None
    report = latent_report(model, data, generator=gen)
    kl = report.kl_per_dim
    result = {
        "checkpoint": str(args.checkpoint),
        "dataset": dataset,
        "n_examples": n,
        "neg_elbo": elbo["loss"],
        "reconstruction": elbo["reconstruction"],
        "kl": elbo["kl"],
        "elbo_bits_per_dim": elbo["bits_per_dim"],
        "k": args.k,
        "nll": nll,
        "bits_per_dim": float(bits_per_dim(nll, dims, likelihood, dequantized=data.dequantize)),
        "active_units": report.active_units,
        "latent_dim": report.latent_dim,
        "mutual_information": report.mutual_information,
        "marginal_kl": report.marginal_kl,
        "kl_per_dim": None if kl is None else [float(v) for v in kl],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.checkpoint} on the {dataset} test set ({n} examples), nats per example:")
    print(f"  -ELBO            {elbo['loss']:10.3f}   ({elbo['bits_per_dim']:.4f} bits/dim)")
    print(f"  reconstruction   {elbo['reconstruction']:10.3f}")
    print(f"  KL               {elbo['kl']:10.3f}")
    print(f"  NLL (IWAE)       {nll:10.3f}   ({result['bits_per_dim']:.4f} bits/dim, k={args.k})")
    print(f"  active units     {report.active_units:6d} / {report.latent_dim}")
    print(f"  I(x;z)           {report.mutual_information:10.3f}")
    print(f"  KL(q(z)||p(z))   {report.marginal_kl:10.3f}")
    if kl is not None:
        print(
            f"  KL per dim       min {float(kl.min()):.3f}  median {float(kl.median()):.3f}  "
            f"max {float(kl.max()):.3f}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        collapsed = warn_if_collapsed(report)  # the rule, without the Python warning
    if collapsed:
        print(
            f"  warning: posterior collapse, {report.active_units} of {report.latent_dim} "
            f"dimensions active, I(x;z) ~ {report.mutual_information:.3g} nats (try "
            f"--warmup-epochs, --free-bits or a smaller --beta)"
        )


def _eval_vq(
    args: argparse.Namespace,
    model: VQVAE,
    data: TensorLoader,
    dataset: str,
    n: int,
    device: torch.device,
) -> None:
    """A VQ-VAE has no ELBO over continuous latents: its reconstruction and code usage."""
    found = Trainer(model, VQLoss(), device=device).evaluate(data)
    result = {"checkpoint": str(args.checkpoint), "dataset": dataset, "n_examples": n, **found}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.checkpoint} on the {dataset} test set ({n} examples):")
    for name, value in found.items():
        print(f"  {name:16s} {value:10.4f}")
