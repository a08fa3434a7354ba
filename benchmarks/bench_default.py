"""The default model's training speed at this checkout against an older commit, in one process.

Both versions of torchvae are imported side by side (the old one extracted by ``git archive``
and imported as ``torchvae_old``), build the same default model (the 784-400-20 MLP VAE,
ReLU, Bernoulli likelihood, standard normal prior, diagonal Gaussian posterior) from the
same initial weights, and train it with their own ``Trainer``, ``ELBOLoss`` and
``TensorLoader`` on the same images. The two alternate in short blocks (one pass over a
subset), so that a machine's changing load falls on both alike; the figure is the ratio of
their times in each round (old / now: above 1 means faster now), its median and range.

    python benchmarks/bench_default.py                   # 3075d78, 20 rounds of 40 steps
    python benchmarks/bench_default.py --quick           # smoke run
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def old_package(ref: str, where: Path) -> ModuleType:
    """torchvae at ``ref``, importable as ``torchvae_old``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src/torchvae"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    package = where / "torchvae_old"
    (where / "src" / "torchvae").rename(package)
    for f in package.rglob("*.py"):  # its few absolute imports of itself
        text = f.read_text()
        fixed = re.sub(r"\bimport torchvae\b", "import torchvae_old as torchvae", text)
        if fixed != text:
            f.write_text(fixed)
    sys.path.insert(0, str(where))
    return importlib.import_module("torchvae_old")


def images(n: int) -> torch.Tensor:
    if (FASHION / "train-images-idx3-ubyte.gz").exists():
        import torchvae

        data, _ = torchvae.load_dataset("fashion-mnist", FASHION, train=True)
        return data[:n]
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)


def trainer_of(lib: ModuleType, weights: dict[str, torch.Tensor] | None) -> Any:
    model = lib.VAE(
        lib.Encoder(784, [400], 20, activation=nn.ReLU),
        lib.Decoder(20, [400], 784, activation=nn.ReLU),
    )
    if weights is not None:
        model.load_state_dict(weights, strict=False)
    return lib.Trainer(model, lib.ELBOLoss(), device="cpu", seed=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old-ref", default="3075d78", help="the older commit (default 3075d78)")
    p.add_argument("--rounds", type=int, default=20, help="alternating rounds (20; quick 2)")
    p.add_argument("--steps", type=int, default=40, help="steps of 128 per block (40; quick 4)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke run")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 4
    torch.set_num_threads(args.threads)
    import torchvae

    with tempfile.TemporaryDirectory() as tmp:
        old = old_package(args.old_ref, Path(tmp))
        x = images(128 * args.steps)
        torch.manual_seed(0)
        new_trainer = trainer_of(torchvae, None)
        start = new_trainer.model.state_dict()
        old_trainer = trainer_of(old, {k: v.clone() for k, v in start.items()})
        pairs = {
            "now": (new_trainer, torchvae.TensorLoader(x, batch_size=128, flatten=True)),
            args.old_ref: (old_trainer, old.TensorLoader(x, batch_size=128, flatten=True)),
        }
        times: dict[str, list[float]] = {name: [] for name in pairs}
        for r in range(args.rounds + 1):  # round 0 warms both up
            order = list(pairs) if r % 2 == 0 else list(pairs)[::-1]
            for name in order:
                trainer, loader = pairs[name]
                t = time.perf_counter()
                trainer.fit(loader, epochs=trainer.epoch + 1)
                if r:
                    times[name].append(time.perf_counter() - t)
        ratios = [o / n for o, n in zip(times[args.old_ref], times["now"], strict=True)]
        losses = {name: pairs[name][0].metrics["loss"] for name in pairs}
    ms = {name: 1000 * statistics.median(v) / args.steps for name, v in times.items()}
    print(
        f"default 784-400-20 VAE, {args.rounds} alternating rounds of {args.steps} steps of 128, "
        f"{args.threads} threads; torch {torch.__version__}"
    )
    for name in pairs:
        print(f"  {name:>8}: {ms[name]:.2f} ms/step (median), last epoch loss {losses[name]:.2f}")
    print(
        f"  old/now per round: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); above 1: faster now"
    )


if __name__ == "__main__":
    main()
