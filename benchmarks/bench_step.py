#!/usr/bin/env python3
"""Step-level measurements, in one process, that the epoch benchmarks are too noisy for.

1. The Trainer's own cost: torchvae's ``Trainer`` (default fused Adam, ``TensorLoader``)
   against a bare loop with the same optimizer (``Adam(fused=True)``) over a preloaded
   float tensor, the MLP 784-400-20 of ``bench_train.py``, batch 128. The two run in
   alternating blocks of ``--steps`` steps, ``--blocks`` times each, so that drift in the
   machine's speed falls on both alike; each Trainer block is one ``fit`` call, whose
   per-call work (seeding, the end-of-epoch checks) is thus counted once per block.
   Reported: ms per step (median and best block) and the ratio bare / Trainer (1.0: the
   Trainer adds nothing).
2. Denormals: one fused Adam step over a 400x784 weight whose first moments are normal or
   denormal (1e-39), with and without ``torch.set_flush_denormal`` (what the Trainer's
   ``flush_denormal=True`` sets on the CPU).
3. The Bernoulli log-likelihood: torchvae's CPU kernel against PyTorch's
   ``binary_cross_entropy_with_logits`` (summed) for a batch of 128 images, and for the
   5 samples per image of an IWAE step (5, 128, 784), forward and forward + backward;
   median and range of ``--repeats`` runs of 100 calls (``--kernel-only``: this part alone).

Example:
    python benchmarks/bench_step.py --quick
    python benchmarks/bench_step.py            # 15 blocks of 200 steps
    python benchmarks/bench_step.py --threads 1 --kernel-only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _bench as B
import torch
import torch.nn.functional as F
from torch import Tensor


def _images(data_dir: Path | None, n: int, seed: int) -> tuple[Tensor, str]:
    source = B.find_source(data_dir)
    if source is None:
        return B.synthetic(n, seed)[0], "synthetic (MNIST-shaped uint8)"
    name = B.FILES["train_images"]
    path = source / name if (source / name).exists() else source / f"{name}.gz"
    return B.read_idx(path)[:n], f"Fashion-MNIST ({source})"


def trainer_cost(images: Tensor, steps: int, blocks: int) -> dict[str, list[float]]:
    """ms per step of each block: the Trainer and the bare fused-Adam loop, alternating."""
    from torchvae.data import TensorLoader
    from torchvae.training.trainer import Trainer

    x = images.reshape(len(images), -1).float().div_(255)
    torch.manual_seed(0)
    bare_model = B.ExamplesVAE()
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=1e-3, fused=True)

    def bare() -> float:
        perm = torch.randperm(len(x))
        t = time.perf_counter()
        for i in range(0, len(x), 128):
            xb = x[perm[i : i + 128]]
            recon, mu, logvar = bare_model(xb)
            loss = B.examples_loss(recon, xb, mu, logvar)
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            bare_opt.step()
        return time.perf_counter() - t

    loader = TensorLoader(images, batch_size=128, shuffle=True, seed=0, flatten=True)
    trainer = Trainer(B.torchvae_mlp(), device="cpu", seed=0)

    def fit_one_epoch() -> float:
        t = time.perf_counter()
        trainer.fit(loader, epochs=trainer.epoch + 1)
        return time.perf_counter() - t

    cases: dict[str, Callable[[], float]] = {"bare-fused": bare, "Trainer": fit_one_epoch}
    for run in cases.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(blocks):
        for name, run in cases.items():
            times[name].append(run() / steps * 1e3)
    return times


def adam_denormal(repeats: int) -> dict[tuple[str, bool], float]:
    """us per fused Adam step, by first-moment values and flush mode (median of repeats)."""
    weight = torch.nn.Parameter(torch.randn(400, 784))
    out: dict[tuple[str, bool], float] = {}
    for moments, m0 in (("normal", 1e-3), ("denormal", 1e-39)):
        for flush in (False, True):
            results = []
            for _ in range(repeats):
                torch.set_flush_denormal(flush)
                opt = torch.optim.Adam([weight], lr=1e-3, fused=True)
                weight.grad = torch.zeros_like(weight)
                opt.step()
                state = opt.state[weight]
                t = time.perf_counter()
                for _ in range(50):
                    state["exp_avg"].fill_(m0)  # the step would decay them further
                    state["exp_avg_sq"].fill_(1e-6)
                    opt.step()
                results.append((time.perf_counter() - t) / 50 * 1e6)
                torch.set_flush_denormal(False)
            out[(moments, flush)] = statistics.median(results)
    return out


def bernoulli_kernel(repeats: int) -> dict[str, list[float]]:
    """us per call, each run: BCE vs torchvae's kernel, forward and forward+backward."""
    from torchvae.likelihoods._bernoulli import _bernoulli_nll

    torch.manual_seed(0)
    x = torch.rand(128, 784)
    fns: dict[str, Callable[[Tensor], Tensor]] = {
        "BCE with logits": lambda lg: F.binary_cross_entropy_with_logits(
            lg, x.expand_as(lg), reduction="sum"
        ),
        "torchvae kernel": lambda lg: _bernoulli_nll(lg, x, lg.ndim).sum(),
    }
    out: dict[str, list[float]] = {}
    for shape in ((128, 784), (5, 128, 784)):
        logits0 = torch.randn(shape) * 3
        for name, fn in fns.items():
            for backward in (False, True):
                logits = logits0.clone().requires_grad_(backward)
                runs = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    for _ in range(100):
                        value = fn(logits)
                        if backward:
                            value.backward()  # type: ignore[no-untyped-call]
                    runs.append((time.perf_counter() - t) / 100 * 1e6)
                what = "forward+backward" if backward else "forward"
                out[f"{tuple(shape)}, {name}, {what}"] = runs
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 3 blocks of 10 steps")
    p.add_argument("--steps", type=int, default=None, help="steps per block (200; quick 10)")
    p.add_argument("--blocks", type=int, default=None, help="blocks per case (15; quick 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--kernel-only", action="store_true", help="part 3 (the Bernoulli kernel) alone")
    args = p.parse_args(argv)
    steps = args.steps or (10 if args.quick else 200)
    blocks = args.blocks or (3 if args.quick else 15)
    repeats = 2 if args.quick else 5
    B.set_threads(args.threads)
    B.ensure_torchvae_importable()
    if args.kernel_only:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        return bernoulli_table(repeats)
    images, data = _images(args.data_dir, steps * 128, seed=0)
    print(f"data: {data}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    times = trainer_cost(images, steps, blocks)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"\n1. The Trainer's cost ({blocks} alternating blocks of {steps} steps, batch 128)")
    B.print_table(
        ["case", "ms/step (median)", "ms/step (best block)"],
        [[k, f"{med[k]:.3f}", f"{best[k]:.3f}"] for k in times],
    )
    print(
        f"bare-fused / Trainer: {med['bare-fused'] / med['Trainer']:.3f} (medians), "
        f"{best['bare-fused'] / best['Trainer']:.3f} (best blocks)"
    )

    adam = adam_denormal(repeats)
    print("\n2. One fused Adam step over a 400x784 weight (us, median)")
    B.print_table(
        ["first moments", "flush off", "flush on"],
        [[m, f"{adam[(m, False)]:.1f}", f"{adam[(m, True)]:.1f}"] for m in ("normal", "denormal")],
    )

    return bernoulli_table(repeats)


def bernoulli_table(repeats: int) -> int:
    kernel = bernoulli_kernel(repeats)
    print(f"\n3. Bernoulli log-likelihood (us per call, median and range of {repeats} runs)")
    rows = [
        [k, f"{statistics.median(v):.1f}", f"{min(v):.1f}-{max(v):.1f}"] for k, v in kernel.items()
    ]
    B.print_table(["what", "us", "range"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
