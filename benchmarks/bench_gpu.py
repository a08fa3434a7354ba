#!/usr/bin/env python3
"""torchvae's Trainer against a bare training loop on a CUDA GPU, fp32 and bf16 autocast.

Same model and settings as ``bench_train.py`` (MLP 784-400-20, ReLU, Bernoulli likelihood,
Adam 1e-3, batch 128), one process, cases alternating across repeats:

  bare-fp32         preloaded float32 tensor on the GPU, randperm indexing, logits + BCE
                    with logits (summed) + KL, torch.optim.Adam's default (foreach).
  bare-fused-fp32   the same with Adam(fused=True), the Trainer's default optimizer.
  bare-bf16         the bare loop under torch.autocast("cuda", dtype=torch.bfloat16).
  torchvae-fp32     Trainer(device="cuda") with its default optimizer (fused Adam), fed by
                    TensorLoader(device="cuda"): uint8 data on the GPU, float batches made
                    there; by default the Trainer records its step as one CUDA graph and
                    replays it (``cuda_graph=True``; its status is printed).
  torchvae-eager-fp32  the same with cuda_graph=False: every step launched op by op.
  torchvae-bf16     the same with precision="bf16".
  torchvae-hostdata Trainer fed by a TensorLoader on the CPU (batches copied each step).
  (--compile adds bare-compile and torchvae-compile, fp32.)

Then torchvae.log_likelihood with k=1000 over the test images on the GPU. The closing line
gives the speed-up the GPU work aims at: torchvae-fp32's samples/s over bare-fp32's (the
bare eager loop), target >= 3.

Data: synthetic MNIST-shaped uint8 (the device machine has no /usr/share/datasets), or the
four Fashion-MNIST IDX files from ``--data-dir`` (e.g. a folder carried with the tree).

Example (about 2 minutes on an H100):
    python3 benchmarks/bench_gpu.py
    python3 benchmarks/bench_gpu.py --device cpu --quick   # smoke test without a GPU
"""

from __future__ import annotations

import argparse
import json
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load(data_dir: Path | None, quick: bool, seed: int) -> tuple[Tensor, Tensor, str]:
    """uint8 train and test images (N, 28, 28) on the CPU, and the data's name."""
    n_train, n_test = (4096, 1000) if quick else (60_000, 10_000)
    source = B.find_source(data_dir) if data_dir is not None else None
    if source is None:
        return synthetic_pair(n_train, n_test, seed)
    imgs = []
    for key in ("train_images", "test_images"):
        name = B.FILES[key]
        path = source / name if (source / name).exists() else source / f"{name}.gz"
        imgs.append(B.read_idx(path))
    return imgs[0][:n_train], imgs[1][:n_test], f"Fashion-MNIST ({source})"


def synthetic_pair(n_train: int, n_test: int, seed: int) -> tuple[Tensor, Tensor, str]:
    return (
        B.synthetic(n_train, seed)[0],
        B.synthetic(n_test, seed + 1)[0],
        "synthetic (MNIST-shaped uint8)",
    )


def bare_loss(model: B.ExamplesVAE, x: Tensor) -> Tensor:
    """The bare loop's loss from logits: summed BCE with logits plus KL, mean per example."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    logits = model.fc4(F.relu(model.fc3(z)))
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.shape[0]


def run_bare(
    train_u8: Tensor,
    device: torch.device,
    args: argparse.Namespace,
    precision: str,
    fused: bool = False,
) -> tuple[list[float], Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]]:
    torch.manual_seed(args.seed)
    model = B.ExamplesVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    x = train_u8.to(device).reshape(len(train_u8), -1).float().div_(255)
    step_loss: Callable[[B.ExamplesVAE, Tensor], Tensor] = (
        torch.compile(bare_loss) if precision == "compile" else bare_loss
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    n, bs, times = len(x), args.batch_size, []
    for _ in range(args.epochs):
        _sync(device)
        t = time.perf_counter()
        perm = torch.randperm(n, device=device)
        for i in range(0, n, bs):
            with autocast:
                loss = step_loss(model, x[perm[i : i + bs]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    model.eval()
    return times, model


def run_torchvae(
    train_u8: Tensor, device: torch.device, args: argparse.Namespace, variant: str
) -> tuple[list[float], Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]]:
    from torchvae.callbacks import Callback
    from torchvae.data import TensorLoader
    from torchvae.training.trainer import Trainer

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Trainer) -> None:
            _sync(device)
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer: Trainer) -> None:
            _sync(device)
            self.times.append(time.perf_counter() - self._t)

    torch.manual_seed(args.seed)
    model = B.torchvae_mlp()
    loader = TensorLoader(
        train_u8,
        batch_size=args.batch_size,
        shuffle=True,
        seed=args.seed,
        flatten=True,
        device=None if variant == "hostdata" else device,
    )
    timer = EpochTimer()
    trainer = Trainer(
        model,
        callbacks=[timer],
        device=device,
        seed=args.seed,
        precision="bf16" if variant == "bf16" else "32",
        compile=variant == "compile",
        cuda_graph=variant != "eager",
    )
    trainer.fit(loader, epochs=args.epochs)
    print(f"    (the Trainer's steps: {trainer.cuda_graph_status})", flush=True)
    model.eval()

    def forward(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = model(xb)
        return out.x_hat, out.mean, out.log_var

    return timer.times, forward


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="4096 images, 2 epochs, 1 repeat")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 5)")
    p.add_argument("--repeats", type=int, default=None, help="runs per case (default 2)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--compile", action="store_true", help="add the torch.compile cases")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the Fashion-MNIST IDX files (default: synthetic)")  # fmt: skip
    p.add_argument("--nll-k", type=int, default=1000, help="k for the NLL timing (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None,
                   help="write the numbers here (default: $OUT/bench_gpu.json)")  # fmt: skip
    args = p.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 5)
    args.repeats = args.repeats or (1 if args.quick else 2)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a smoke test", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    torch.backends.cudnn.allow_tf32 = False
    train_u8, test_u8, name = load(args.data_dir, args.quick, args.seed)
    x_test = test_u8.reshape(len(test_u8), -1).to(device).float().div_(255)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{gpu}; torch {torch.__version__}; data {name}; batch {args.batch_size}, "
        f"{args.epochs} epochs x {args.repeats} repeats; medians over epochs 2..N",
        flush=True,
    )
    cases: dict[str, Callable[[], tuple[list[float], Any]]] = {
        "bare-fp32": lambda: run_bare(train_u8, device, args, "32"),
        "bare-fused-fp32": lambda: run_bare(train_u8, device, args, "32", fused=True),
        "bare-bf16": lambda: run_bare(train_u8, device, args, "bf16"),
        "torchvae-fp32": lambda: run_torchvae(train_u8, device, args, "32"),
        "torchvae-eager-fp32": lambda: run_torchvae(train_u8, device, args, "eager"),
        "torchvae-bf16": lambda: run_torchvae(train_u8, device, args, "bf16"),
        "torchvae-hostdata": lambda: run_torchvae(train_u8, device, args, "hostdata"),
    }
    if args.compile:
        cases["bare-compile"] = lambda: run_bare(train_u8, device, args, "compile")
        cases["torchvae-compile"] = lambda: run_torchvae(train_u8, device, args, "compile")
    names = list(cases)
    times: dict[str, list[float]] = {c: [] for c in names}
    elbo: dict[str, list[float]] = {c: [] for c in names}
    mem: dict[str, float] = dict.fromkeys(names, 0.0)
    for r in range(args.repeats):
        for c in names if r % 2 == 0 else names[::-1]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            epoch_s, forward = cases[c]()
            if device.type == "cuda":
                mem[c] = max(mem[c], torch.cuda.max_memory_allocated(device) / 2**20)
            times[c] += epoch_s[1:] if len(epoch_s) > 1 else epoch_s
            elbo[c].append(B.neg_elbo(forward, x_test))
            print(f"  [{r + 1}] {c}: " + " ".join(f"{s:.3f}" for s in epoch_s), flush=True)
    med = {c: statistics.median(times[c]) for c in names}
    rows = []
    for c in names:
        ref = "bare-bf16" if c.endswith("bf16") else "bare-fp32"
        rows.append(
            [c, f"{med[c]:.3f}", f"{len(train_u8) / med[c]:.0f}",
             f"{med[ref] / med[c]:.2f}", f"{med['bare-fused-fp32'] / med[c]:.2f}",
             B.fmt(mem[c], ".0f"), f"{statistics.median(elbo[c]):.2f}"]
        )  # fmt: skip
    print()
    B.print_table(
        ["case", "s/epoch", "samples/s", "x vs bare (same precision)", "x vs bare-fused-fp32",
         "max alloc MB", "test -ELBO"],
        rows,
    )  # fmt: skip
    speedup = [b / t for b, t in zip(times["bare-fp32"], times["torchvae-fp32"], strict=False)]
    ratio = med["bare-fp32"] / med["torchvae-fp32"]
    print(
        f"\ntorchvae-fp32 samples/s / bare-fp32's (target >= 3): {ratio:.2f} (medians; "
        f"epoch by epoch {min(speedup):.2f}-{max(speedup):.2f})"
    )
    result: dict[str, Any] = {"gpu": gpu, "torch": torch.__version__, "data": name,
                              "times": times, "neg_elbo": elbo, "max_alloc_mb": mem}  # fmt: skip
    if args.nll_k:
        from torchvae.objectives.importance import log_likelihood

        torch.manual_seed(args.seed)
        model = B.torchvae_mlp().to(device).eval()
        for chunk in (8192, 65536):
            _sync(device)
            t = time.perf_counter()
            ll = log_likelihood(model, x_test, k=args.nll_k, chunk_size=chunk)
            _sync(device)
            s = time.perf_counter() - t
            print(
                f"log_likelihood k={args.nll_k} over {len(x_test)} test images "
                f"(untrained model, chunk_size={chunk}): {s:.2f} s, NLL {-float(ll.mean()):.1f}"
            )
            result[f"nll_s_chunk{chunk}"] = s
    out = args.json or (Path(os.environ["OUT"]) / "bench_gpu.json" if "OUT" in os.environ else None)
    if out is not None:
        out.write_text(json.dumps(result, indent=1, default=lambda v: None if math.isnan(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
