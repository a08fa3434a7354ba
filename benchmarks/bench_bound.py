#!/usr/bin/env python3
"""How close the Trainer's step is to its matrix-multiply bound, measured in one process.

Three cases on the MLP 784-400-20 (ReLU, Bernoulli likelihood, closed-form KL), batch 128,
fp32, CPU, run round-robin (the order reversed every other round) so that drift in the
machine's speed falls on all alike:

  Trainer      torchvae's ``Trainer`` (default fused Adam) fed by a ``TensorLoader`` of
               ``uint8`` images; each block is one ``fit`` call of ``--steps`` steps, so
               its per-call work (seeding, the end-of-epoch checks) is counted once a block.
  bare-fused   a bare loop over a preloaded float32 tensor: ``randperm`` indexing,
               pytorch/examples' model and loss (sigmoid + BCE summed + KL),
               ``Adam(fused=True)``.
  GEMM-only    the 15 matrix products of one step alone (5 layers' forward, grad-weight
               and grad-input products, with the shapes and layouts ``nn.Linear`` and
               autograd use), into preallocated outputs: the step's arithmetic bound.
               (``fc1``'s grad-input product, which autograd skips because ``x`` needs no
               gradient, is one of the 15: the 14 the step runs are shown too.)

Printed: ms/step per case (median and the min-max spread of the blocks), and the two ratios
the speed work aims at, each per round (the cases of a round run back to back) with their
median and spread: bare-fused / Trainer (target >= 1.15) and Trainer / GEMM-only (target
<= 1.6).

``--reference SRC`` also checks that the Trainer still computes what it did: it trains
the same model for ``--check-epochs`` epochs with seed 0 on Fashion-MNIST (or synthetic
data) under the torchvae in ``SRC`` (e.g. an unpacked older checkout's ``src``) and under
this one, each in a fresh process, and compares the test -ELBO and the importance-weighted
NLL (k=100): the exit status is 1 when either differs by more than 0.1 nats.

Example:
    python benchmarks/bench_bound.py --quick
    python benchmarks/bench_bound.py                      # 9 rounds of 100 steps
    python benchmarks/bench_bound.py --rounds 0 --reference /tmp/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _bench as B
import torch
from torch import Tensor

# Wall-clock by default; --clock cpu counts this process's CPU time instead, which the
# waits of a loaded machine do not inflate (with one thread: the work the step does).
_clock = time.perf_counter
_SIZES = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]  # fc1, fc21, fc22, fc3, fc4


def _images(n: int, test: bool = False) -> tuple[Tensor, str]:
    source = B.find_source(None)
    if source is None:
        return B.synthetic(n, 1 if test else 0)[0], "synthetic (MNIST-shaped uint8)"
    name = B.FILES["test_images" if test else "train_images"]
    path = source / name if (source / name).exists() else source / f"{name}.gz"
    return B.read_idx(path)[:n], f"Fashion-MNIST ({source})"


def gemm_only(batch: int, include_input_grad_of_first: bool = True) -> Callable[[], None]:
    """One step's matrix products alone: forward, grad-weight and grad-input of each layer."""
    g = torch.Generator().manual_seed(0)
    products: list[tuple[Tensor, Tensor, Tensor]] = []
    for i, (n_in, n_out) in enumerate(_SIZES):
        w = torch.randn(n_out, n_in, generator=g)
        a, d = torch.randn(batch, n_in, generator=g), torch.randn(batch, n_out, generator=g)
        products.append((a, w.t(), torch.empty(batch, n_out)))  # forward: a @ W^T
        products.append((d.t(), a, torch.empty(n_out, n_in)))  # grad-weight: d^T @ a
        if i > 0 or include_input_grad_of_first:
            products.append((d, w, torch.empty(batch, n_in)))  # grad-input: d @ W

    def run() -> None:
        for a, b, out in products:
            torch.mm(a, b, out=out)

    return run


def cases(images: Tensor, steps: int, batch: int) -> dict[str, Callable[[], float]]:
    """Each case as a function that runs one block and returns its seconds."""
    from torchvae.data import TensorLoader
    from torchvae.training.trainer import Trainer

    x = images.reshape(len(images), -1).float().div_(255)
    torch.manual_seed(0)
    bare_model = B.ExamplesVAE()
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=1e-3, fused=True)

    def bare() -> float:
        perm = torch.randperm(len(x))
        t = _clock()
        for i in range(0, steps * batch, batch):
            xb = x[perm[i : i + batch]]
            recon, mu, logvar = bare_model(xb)
            loss = B.examples_loss(recon, xb, mu, logvar)
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            bare_opt.step()
        return _clock() - t

    loader = TensorLoader(images, batch_size=batch, shuffle=True, seed=0, flatten=True)
    trainer = Trainer(B.torchvae_mlp(), device="cpu", seed=0, batch_size=batch)

    def fit_block() -> float:
        t = _clock()
        trainer.fit(loader, epochs=trainer.epoch + 1)
        return _clock() - t

    def timed(run: Callable[[], None]) -> Callable[[], float]:
        def block() -> float:
            t = _clock()
            for _ in range(steps):
                run()
            return _clock() - t

        return block

    return {
        "Trainer": fit_block,
        "bare-fused": bare,
        "GEMM-only (15)": timed(gemm_only(batch)),
        "GEMM-only (14)": timed(gemm_only(batch, include_input_grad_of_first=False)),
    }


def measure(images: Tensor, steps: int, rounds: int, batch: int) -> dict[str, list[float]]:
    """ms/step of each block, round-robin over the cases."""
    runs = cases(images, steps, batch)
    for run in runs.values():  # warm-up
        run()
    names, times = list(runs), {name: [] for name in runs}  # type: dict[str, list[float]]
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(runs[name]() / steps * 1e3)
        done = ", ".join(f"{name} {times[name][-1]:.2f}" for name in names)
        print(f"  round {r + 1}/{rounds} (ms/step): {done}", flush=True)
    return times


def spread(values: list[float], spec: str = ".3f") -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def report(times: dict[str, list[float]], steps: int, rounds: int) -> None:
    print(f"\nms/step ({rounds} round-robin rounds of {steps} steps; median (min-max))")
    B.print_table(["case", "ms/step"], [[k, spread(v)] for k, v in times.items()])
    trainer = times["Trainer"]
    vs_bare = [b / t for b, t in zip(times["bare-fused"], trainer, strict=True)]
    vs_gemm = [t / g for t, g in zip(trainer, times["GEMM-only (15)"], strict=True)]
    vs_gemm14 = [t / g for t, g in zip(trainer, times["GEMM-only (14)"], strict=True)]
    print("\nratios, per round: median (min-max)")
    B.print_table(
        ["ratio", "value", "target"],
        [
            ["bare-fused / Trainer (Trainer's speed-up)", spread(vs_bare, ".2f"), ">= 1.15"],
            ["Trainer / GEMM-only (15 products)", spread(vs_gemm, ".2f"), "<= 1.6"],
            ["Trainer / GEMM-only (the 14 it runs)", spread(vs_gemm14, ".2f"), "-"],
        ],
    )


# ------------------------------------------------------------------------- the same results


def train_and_score(epochs: int, n_train: int, n_test: int, k: int) -> dict[str, float]:
    """Train the MLP with seed 0 and return its test -ELBO and IW-NLL (seeded), in nats."""
    from torchvae import Trainer, log_likelihood
    from torchvae.data import TensorLoader

    train, data = _images(n_train)
    test = _images(n_test, test=True)[0].reshape(n_test, -1).float().div_(255)
    torch.manual_seed(0)
    model = B.torchvae_mlp()
    loader = TensorLoader(train, batch_size=128, shuffle=True, seed=0, flatten=True)
    trainer = Trainer(model, device="cpu", seed=0)
    trainer.fit(loader, epochs=epochs)
    torch.manual_seed(1)
    elbo = trainer.evaluate(test)["loss"]
    torch.manual_seed(2)
    nll = -float(log_likelihood(model, test, k=k).mean())
    return {"neg_elbo": elbo, "iw_nll": nll, "data": data}  # type: ignore[dict-item]


def same_results(reference: Path, epochs: int, n_train: int, n_test: int, k: int) -> bool:
    """Train under ``reference``'s torchvae and this one; whether both scores agree to 0.1."""
    here = Path(__file__).resolve().parent
    found = {}
    for label, src in (("reference", reference.resolve()), ("this tree", here.parent / "src")):
        env = dict(os.environ, PYTHONPATH=str(src))
        code = (
            f"import sys, json; sys.path.insert(0, {str(here)!r}); import bench_bound as b; "
            f"b.B.set_threads(2); "
            f"print(json.dumps(b.train_and_score({epochs}, {n_train}, {n_test}, {k})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        found[label] = json.loads(out.stdout.strip().splitlines()[-1])
    ref, new = found["reference"], found["this tree"]
    print(
        f"\nthe same results? {epochs} epochs on {n_train} images ({ref['data']}), seed 0; "
        f"{n_test} test images"
    )
    rows, ok = [], True
    for key, what in (("neg_elbo", "test -ELBO"), ("iw_nll", f"test IW-NLL (k={k})")):
        diff = new[key] - ref[key]
        ok = ok and abs(diff) <= 0.1
        rows.append([what, f"{ref[key]:.4f}", f"{new[key]:.4f}", f"{diff:+.4f}"])
    B.print_table(["nats", str(reference), "this tree", "difference"], rows)
    print("within 0.1 nats" if ok else "DIFFERENT: more than 0.1 nats apart")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 5 steps")
    p.add_argument("--steps", type=int, default=None, help="steps per block (100; quick 5)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (9; quick 2; 0: none)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall-clock time, or this process's CPU time (with --threads 1, "
                   "what a loaded machine's waits do not inflate)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reference", type=Path, default=None,
                   help="a torchvae src folder to compare results with (see above)")  # fmt: skip
    p.add_argument("--check-epochs", type=int, default=3)
    p.add_argument("--check-train", type=int, default=10_000, help="training images")
    p.add_argument("--check-test", type=int, default=2000, help="test images")
    p.add_argument("--check-k", type=int, default=100, help="importance samples")
    args = p.parse_args(argv)
    steps = args.steps or (5 if args.quick else 100)
    rounds = (2 if args.quick else 9) if args.rounds is None else args.rounds
    B.set_threads(args.threads)
    B.ensure_torchvae_importable()
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if rounds:
        images, data = _images(steps * args.batch_size)
        print(
            f"data: {data}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{args.clock} clock",
            flush=True,
        )
        report(measure(images, steps, rounds, args.batch_size), steps, rounds)
    if args.reference is not None:
        scale = 0.05 if args.quick else 1.0
        n_train, n_test = int(args.check_train * scale), max(100, int(args.check_test * scale))
        epochs = 1 if args.quick else args.check_epochs
        if not same_results(args.reference, epochs, n_train, n_test, args.check_k):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
