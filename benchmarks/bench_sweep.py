"""Many models at once: a ``Sweep`` of K VAEs against K sequential ``Trainer`` runs.

Both cases train the same K models (784-400-20 by default, each its own seed and beta)
for the same steps on the same data (Fashion-MNIST from Debian's package when present,
MNIST-shaped synthetic images otherwise), each in a fresh process so that its peak
resident memory is its own, after a tiny run of the same kind that pays the one-time
costs of a process's first fit. The cases alternate in rounds (the order flipping each round)
so that a machine shared with other work slows both alike; the table gives the median and
the range over the rounds of the throughput, models x samples per second, in wall-clock
and in CPU time (the latter less disturbed by other processes on a shared machine).

    python benchmarks/bench_sweep.py                      # K=8, 3 rounds, 1 thread
    python benchmarks/bench_sweep.py --threads 2 --rounds 5
    python benchmarks/bench_sweep.py --quick              # a smoke run (no timing claims)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _bench as B

B.ensure_torchvae_importable()

import torch  # noqa: E402


def _models(k: int, hidden: int, latent: int) -> list[Any]:
    from torchvae import VAE, Decoder, Encoder

    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(VAE(Encoder(784, hidden, latent), Decoder(latent, hidden, 784)))
    return models


def _loader(images: torch.Tensor, seed: int, batch: int, steps: int) -> Any:
    from torchvae.data import TensorLoader

    return TensorLoader(
        images, batch_size=batch, shuffle=True, seed=seed, flatten=True, max_batches=steps
    )


def child(args: argparse.Namespace) -> None:
    """One measurement, in this process: print wall and CPU seconds and the peak RSS."""
    from torchvae import ELBOLoss, Trainer
    from torchvae.training.sweep import Sweep, SweepMember

    B.set_threads(args.threads)
    images = B.read_idx(Path(args.work) / B.RAW_SUBDIR / B.FILES["train_images"])
    betas = [0.5 + 0.25 * i for i in range(args.k)]
    models = _models(args.k, args.hidden, args.latent)
    loaders = [_loader(images, s, args.batch, args.steps) for s in range(args.k)]
    # The first fit in a process pays one-time costs (lazy imports, first kernels): a tiny
    # run of the same kind first, so that the timing is of the training itself.
    tiny = _models(2, 8, 2)
    warm = [_loader(images, s, 16, 2) for s in range(2)]
    if args.child == "sweep":
        Sweep(tiny, [SweepMember(0), SweepMember(1)], device="cpu").fit(warm)
    else:
        Trainer(tiny[0], device="cpu", seed=0).fit(warm[0])
    wall, cpu = time.perf_counter(), time.process_time()
    if args.child == "sweep":
        members = [SweepMember(s, beta=b) for s, b in zip(range(args.k), betas, strict=True)]
        Sweep(models, members, batch_size=args.batch, device="cpu").fit(loaders, epochs=args.epochs)
    else:
        for s, (model, beta) in enumerate(zip(models, betas, strict=True)):
            trainer = Trainer(model, ELBOLoss(beta=beta), device="cpu", seed=s)
            trainer.fit(loaders[s], epochs=args.epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": B.peak_rss_mb()}))


def gemm_share(args: argparse.Namespace, work: Path) -> None:
    """Profile a Trainer run: the matrix products' share of its CPU time bounds any stacking."""
    from torch.profiler import profile

    from torchvae import Trainer

    B.set_threads(args.threads)
    images = B.read_idx(work / B.RAW_SUBDIR / B.FILES["train_images"])
    model = _models(1, args.hidden, args.latent)[0]
    trainer = Trainer(model, device="cpu", seed=0)
    trainer.fit(_loader(images, 0, args.batch, 5), epochs=1)  # warm up
    with profile() as prof:
        trainer.fit(_loader(images, 0, args.batch, args.steps), epochs=2)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in B.MATMULS)
    print(
        f"Trainer step: matrix products {gemm / total:.0%} of the profiled CPU time "
        f"({total / args.steps / 1e3:.1f} ms per step under the profiler): stacking cannot "
        f"exceed {total / gemm:.2f}x"
    )


def run_case(case: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", case, "--work", str(work)]
    for flag in ("k", "hidden", "latent", "batch", "steps", "epochs", "threads"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    out = subprocess.run(
        cmd, env=B.child_env(args.threads), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{case} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny models, one round")
    p.add_argument("--k", type=int, default=8, help="models (default: 8)")
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch (default: 100)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, help="Fashion-MNIST folder (default: Debian's)")
    p.add_argument(
        "--gemm-share", action="store_true", help="also profile a Trainer step's matrix products"
    )
    p.add_argument("--child", choices=["sweep", "trainers"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.k, args.hidden, args.latent, args.steps, args.rounds = 2, 16, 2, 3, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        name = B.prepare_data(args.data_dir, work, 2048 if args.quick else None, 16)
        print(
            f"{args.k} models of 784-{args.hidden}-{args.latent}, batch {args.batch}, "
            f"{args.steps} steps x {args.epochs} epoch(s), {args.threads} thread(s), {name}"
        )
        results: dict[str, list[dict[str, float]]] = {"sweep": [], "trainers": []}
        for r in range(args.rounds):
            order = ["sweep", "trainers"] if r % 2 == 0 else ["trainers", "sweep"]
            for case in order:
                results[case].append(run_case(case, args, work))
        if args.gemm_share:
            gemm_share(args, work)
    samples = args.k * args.batch * args.steps * args.epochs
    rows = []
    for case, label in (("trainers", f"{args.k} Trainer runs, one after another"),
                        ("sweep", f"Sweep of {args.k}")):  # fmt: skip
        wall = [samples / m["wall"] for m in results[case]]
        cpu = [samples / m["cpu"] for m in results[case]]
        rss = max(m["rss"] for m in results[case])
        rows.append(
            [
                label,
                f"{B.median(wall):.0f} ({min(wall):.0f}-{max(wall):.0f})",
                f"{B.median(cpu):.0f} ({min(cpu):.0f}-{max(cpu):.0f})",
                f"{rss:.0f}",
            ]
        )
    ratios_wall = [
        t["wall"] / s["wall"] for s, t in zip(results["sweep"], results["trainers"], strict=True)
    ]
    ratios_cpu = [
        t["cpu"] / s["cpu"] for s, t in zip(results["sweep"], results["trainers"], strict=True)
    ]
    B.print_table(
        [
            "case",
            "models x samples/s, wall: median (range)",
            "per CPU second: median (range)",
            "peak RSS MB",
        ],
        rows,
    )
    print(
        f"sweep / sequential, per round: wall {', '.join(f'{v:.2f}' for v in ratios_wall)} "
        f"(median {B.median(ratios_wall):.2f}); CPU {', '.join(f'{v:.2f}' for v in ratios_cpu)} "
        f"(median {B.median(ratios_cpu):.2f})"
    )


if __name__ == "__main__":
    main()
