"""``torchvae sample``."""

from __future__ import annotations

import argparse

import torch

from ._parser import NUM_CLASSES, CLIError
from ._runs import check_image_path, draw, image_shape_of, load_run, resolve_device, save_grid

__all__ = ["sample_command"]


def sample_command(args: argparse.Namespace) -> None:
    check_image_path(args.out)  # before the work
    model, run = load_run(args.checkpoint)
    model.to(resolve_device(args.device))
    conditional = bool(getattr(model, "is_conditional", False))
    if args.label is not None and not conditional:
        raise CLIError("--label needs a conditional model (trained with --conditional)")
    labels = None
    if conditional:
        num_classes = int(getattr(model, "num_classes", NUM_CLASSES))
        if args.label is not None and args.label >= num_classes:
            raise CLIError(f"--label must be in [0, {num_classes}), got {args.label}")
        labels = (
            torch.full((args.n,), args.label)
            if args.label is not None
            else torch.arange(args.n) % num_classes
        )
    nrow = args.nrow or (num_classes if conditional and args.label is None else 8)
    fitted = args.sampler == "fitted"
    if fitted and getattr(model, "sampler", None) is None:
        raise CLIError(
            f"--sampler fitted: {args.checkpoint} holds no fitted sampler (train with "
            f"--fit-sampler gmm, or set model.sampler and save the model)"
        )
    if not getattr(model, "can_sample", True):
        raise CLIError(
            f"{args.checkpoint} cannot sample: a VQ-VAE needs its prior over codes (train with "
            f"--code-prior-epochs N)"
        )
    images = draw(model, args.n, labels, args.seed, args.temperature, fitted)
    save_grid(images, image_shape_of(model, run), args.out, nrow)
    print(f"wrote {args.n} samples to {args.out}")
