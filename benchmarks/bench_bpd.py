#!/usr/bin/env python3
"""Bits/dim of 32x32 colour images after a fixed training budget, for three likelihoods.

The same residual VAE (``torchvae.resnet_vae``: ``--channels``, ``--blocks``,
``--latent``) is trained for ``--steps`` Adam steps (lr ``--lr``, batch ``--batch-size``)
with each likelihood, then scored on the test images:

- ``logistic``: ``DiscretizedLogistic(predict_scale=True)`` on ``x / 255`` (a location and
  a log-scale per value);
- ``mixture``: ``DiscretizedLogisticMixture(10)``, PixelCNN++'s mixture with the RGB
  coupling, on ``x / 255``;
- ``gaussian-dequantized``: ``Gaussian(scale=0.1, learn_scale=True)`` (one learned scale)
  on uniformly dequantized data ``(x + u) / 256`` (``TensorLoader(dequantize=True)``).

Bits/dim are the test -ELBO (one z per image, nats) through ``torchvae.bits_per_dim`` with
the model's likelihood: directly for the two discrete likelihoods, plus the dequantization
correction of 8 bits/dim for the Gaussian (its test images are dequantized with fixed
noise). The -ELBO bounds -log p(x), so these are upper bounds on each model's bits/dim.

Data: CIFAR-10 from ``--cifar-root`` (its binary release, read by
``load_image_data("cifar10")``; the first ``--n-train`` training and ``--n-test`` test
images), or, without it, a synthetic CIFAR-like set built here: each image is a 4x4 grid of
colours, upsampled bicubically to 32x32 (every channel 0.7 of one shared random grey grid
plus 0.3 of its own random grid, values uniform in [0, 1]), plus Gaussian noise of
standard deviation 3/255 per value, clipped and rounded to 8 bits. Smooth, with correlated
channels; the noise alone costs 3.64 bits/dim (the entropy of a Gaussian of 3 levels,
rounded), so no model does better than a little above that.

The cases run in one process, in round-robin order (rotated each repeat), each repeat with
its own seed (the same for every case): the table gives the mean and the spread (min-max)
over ``--repeats`` repeats, and the seconds per training step.

Example:
    python benchmarks/bench_bpd.py --quick
    python benchmarks/bench_bpd.py --steps 300 --repeats 3
    python benchmarks/bench_bpd.py --cifar-root ~/data --n-train 50000 --steps 5000
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _bench as B
import torch
import torch.nn.functional as F
from torch import Tensor

B.ensure_torchvae_importable()

from torchvae import (  # noqa: E402
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    ELBOLoss,
    Gaussian,
    Likelihood,
    TensorLoader,
    bits_per_dim,
    load_image_data,
    resnet_vae,
)

CASES: dict[str, tuple[Callable[[], Likelihood], bool]] = {
    "logistic": (lambda: DiscretizedLogistic(predict_scale=True), False),
    "mixture": (lambda: DiscretizedLogisticMixture(10), False),
    "gaussian-dequantized": (lambda: Gaussian(scale=0.1, learn_scale=True), True),
}
DIMS = 3 * 32 * 32


def smooth_images(n: int, seed: int) -> Tensor:
    """``n`` synthetic CIFAR-like ``uint8`` images ``(n, 3, 32, 32)`` (see the module)."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 1, 4, 4, generator=g)
    colour = torch.rand(n, 3, 4, 4, generator=g)
    low = 0.7 * grey + 0.3 * colour
    images = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False)
    images = images + (3 / 255) * torch.randn(n, 3, 32, 32, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def load_data(root: Path | None, n_train: int, n_test: int) -> tuple[Tensor, Tensor, str]:
    """Training and test ``uint8`` images and the data's name."""
    if root is None:
        return smooth_images(n_train, 0), smooth_images(n_test, 1), "synthetic smooth 32x32 RGB"
    splits = []
    for split in ("train", "test"):
        data = load_image_data("cifar10", root=str(root), split=split)
        assert data.images is not None
        splits.append(data.images[: n_train if split == "train" else n_test])
    return splits[0], splits[1], f"CIFAR-10 ({root})"


@torch.no_grad()
def test_nll(model: torch.nn.Module, test: Tensor, dequantize: bool) -> float:
    """Mean test -ELBO in nats per image, one z per image, fixed noise."""
    model.eval()
    total, n = 0.0, 0
    torch.manual_seed(1234)
    for x in TensorLoader(test, batch_size=250, dequantize=dequantize, seed=1234):
        assert isinstance(x, Tensor)
        out = model(x)
        total += float((out.kl - out.log_px_z).sum())
        n += x.shape[0]
    model.train()
    return total / n


def run_case(
    name: str, train: Tensor, test: Tensor, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    make, dequantize = CASES[name]
    torch.manual_seed(seed)
    likelihood = make()
    model = resnet_vae(
        latent_dim=args.latent, likelihood=likelihood, channels=args.channels, blocks=args.blocks
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = ELBOLoss()
    loader = TensorLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=True,
        dequantize=dequantize,
    )
    steps, start = 0, time.perf_counter()
    while steps < args.steps:
        for x in loader:
            assert isinstance(x, Tensor)
            loss = loss_fn(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            steps += 1
            if steps == args.steps:
                break
    seconds = (time.perf_counter() - start) / steps
    nll = test_nll(model, test, dequantize)
    bpd = float(bits_per_dim(nll, DIMS, likelihood, dequantized=dequantize))
    return {
        "bpd": bpd,
        "nll": nll,
        "s_per_step": seconds,
        "final_train_loss": float(loss.total.detach()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 4 steps, tiny net, 1 repeat")
    p.add_argument(
        "--cifar-root", type=Path, default=None, help="where CIFAR-10's binary release is"
    )
    p.add_argument("--n-train", type=int, default=None, help="training images (4800)")
    p.add_argument("--n-test", type=int, default=None, help="test images (500)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps per case (200)")
    p.add_argument("--repeats", type=int, default=None, help="round-robin repeats (3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", default=None, help="encoder stage widths (16,32,64)")
    p.add_argument("--blocks", type=int, default=1, help="residual blocks per stage")
    p.add_argument("--latent", type=int, default=32, help="latent dimensions")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    args = p.parse_args(argv)
    quick = args.quick
    args.n_train = args.n_train or (64 if quick else 4800)
    args.n_test = args.n_test or (32 if quick else 500)
    args.steps = args.steps or (4 if quick else 200)
    repeats = args.repeats or (1 if quick else 3)
    args.channels = tuple(
        int(c) for c in (args.channels or ("4,8" if quick else "16,32,64")).split(",")
    )
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; choose from {list(CASES)}")
    B.set_threads(args.threads)
    train, test, data_name = load_data(args.cifar_root, args.n_train, args.n_test)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = run_case(name, train, test, args, seed=r)
            results[name].append(run)
            print(
                f"  {name}, seed {r}: {run['bpd']:.3f} bits/dim, {run['s_per_step']:.2f} s/step",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"{data_name}: {len(train)} training and {len(test)} test images; resnet_vae("
        f"channels={args.channels}, blocks={args.blocks}, latent_dim={args.latent}), "
        f"{args.steps} Adam steps (lr {args.lr}, batch {args.batch_size}) per case, "
        f"{repeats} round-robin repeats (seeds 0..{repeats - 1}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    for name, runs in results.items():
        bpd = [run["bpd"] for run in runs]
        spread = statistics.stdev(bpd) if len(bpd) > 1 else 0.0
        step = statistics.median(run["s_per_step"] for run in runs)
        rows.append(
            [
                name,
                f"{statistics.mean(bpd):.3f} ± {spread:.3f}",
                f"{min(bpd):.3f}-{max(bpd):.3f}",
                f"{step:.2f}",
            ]
        )
    B.print_table(["likelihood", "test bits/dim (mean ± sd)", "min-max", "s/step (median)"], rows)
    if os.environ.get("OUT"):
        B.write_result(
            str(Path(os.environ["OUT"]) / "bench_bpd.json"),
            {
                "data": data_name,
                "args": {
                    k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                    for k, v in vars(args).items()
                },
                "results": results,
            },
        )
    assert all(math.isfinite(run["bpd"]) for runs in results.values() for run in runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
