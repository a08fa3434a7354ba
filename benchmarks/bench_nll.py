#!/usr/bin/env python3
"""Importance-weighted test NLL: ``torchvae.log_likelihood`` against pythae's ``get_nll``.

Both estimate :math:`-\\log p(x)` with ``k`` importance samples from :math:`q(z \\mid x)`
for the same model (MLP 784-400-20, ReLU, Bernoulli likelihood; trained for
``--train-epochs`` epochs by a bare loop, or untrained with 0), whose weights are copied
into pythae's ``VAE`` so that both estimate the same number. Each measurement runs in its
own fresh process so that its peak resident memory is its own.

Measured:
  1. time for k samples over the test images: torchvae (default chunk_size) vs pythae
     (its default batch_size=100), and the ratio;
  2. torchvae's peak memory by ``chunk_size`` (on a subset);
  3. that k=5000 fits, with a small chunk_size (on a subset).

Example:
    python benchmarks/bench_nll.py --quick
    python benchmarks/bench_nll.py            # k=1000 over the 10k test images
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
import torch
import torch.nn.functional as F


def _child(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    work = Path(args.work)
    B.ensure_torchvae_importable()
    torch.manual_seed(args.seed)
    x = B.load_float(work, train=False)[: args.n]
    state = torch.load(work / "model.pt")
    if args.child == "torchvae":
        from torchvae.objectives.importance import log_likelihood

        model = B.torchvae_mlp()
        model.load_state_dict(state)
        model.eval()
        rss_before, reset = B.current_rss_mb(), B.reset_peak_rss()
        t = time.perf_counter()
        g = torch.Generator().manual_seed(args.seed)
        ll = log_likelihood(model, x, k=args.k, chunk_size=args.chunk_size, generator=g)
        seconds = time.perf_counter() - t
        nll = -float(ll.mean())
    else:
        model = _pythae_model(state)
        x = x.reshape(-1, 1, 28, 28)
        rss_before, reset = B.current_rss_mb(), B.reset_peak_rss()
        t = time.perf_counter()
        with torch.no_grad():
            nll = -float(model.get_nll(x, n_samples=args.k, batch_size=args.pythae_batch_size))
        seconds = time.perf_counter() - t
    peak = B.hwm_rss_mb() if reset else B.peak_rss_mb()
    B.write_result(
        args.result_file,
        {
            "seconds": seconds,
            "nll": nll,
            "peak_rss_mb": B.peak_rss_mb(),
            # The peak during the estimate above what the process held before it.
            "added_mb": max(0.0, peak - rss_before),
        },
    )


def _pythae_model(state: dict[str, torch.Tensor]) -> Any:
    """pythae's VAE with the same MLP, holding the torchvae model's weights."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Enc(BaseEncoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.fc1 = torch.nn.Linear(784, 400)
            self.fc21 = torch.nn.Linear(400, 20)
            self.fc22 = torch.nn.Linear(400, 20)

        def forward(self, x: torch.Tensor) -> Any:
            h1 = F.relu(self.fc1(x.reshape(-1, 784)))
            return ModelOutput(embedding=self.fc21(h1), log_covariance=self.fc22(h1))

    class Dec(BaseDecoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.fc3 = torch.nn.Linear(20, 400)
            self.fc4 = torch.nn.Linear(400, 784)

        def forward(self, z: torch.Tensor) -> Any:
            out = torch.sigmoid(self.fc4(F.relu(self.fc3(z))))
            return ModelOutput(reconstruction=out.reshape(-1, 1, 28, 28))

    names = {
        "encoder.hidden.0": "encoder.fc1",
        "encoder.mean": "encoder.fc21",
        "encoder.log_var": "encoder.fc22",
        "decoder.hidden.0": "decoder.fc3",
        "decoder.output": "decoder.fc4",
    }
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(config, encoder=Enc(), decoder=Dec())
    copied = {}
    for key, value in state.items():
        prefix, leaf = key.rsplit(".", 1)
        copied[f"{names[prefix]}.{leaf}"] = value
    model.load_state_dict(copied)
    return model.eval()


def _train(work: Path, epochs: int, seed: int) -> None:
    """Train the torchvae model briefly (bare loop, Adam 1e-3, batch 128); save its weights."""
    B.ensure_torchvae_importable()
    from torchvae.objectives.losses import ELBOLoss

    torch.manual_seed(seed)
    model = B.torchvae_mlp()
    if epochs:
        x = B.load_float(work, train=True)
        loss_fn = ELBOLoss()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 128):
                xb = x[perm[i : i + 128]]
                loss = loss_fn(model(xb), xb).total
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    torch.save(model.state_dict(), work / "model.pt")


def _run(
    python: str, kind: str, args: argparse.Namespace, work: Path, **opts: int
) -> dict[str, Any] | str:
    out = work / "result.json"
    out.unlink(missing_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--child", kind, "--work", str(work)]
    for name in ("threads", "seed", "pythae_batch_size"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for name, value in opts.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    cmd += ["--result-file", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=B.child_env(args.threads))
    if proc.returncode != 0 or not out.exists():
        return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 200 images, k=100, no training")  # fmt: skip
    p.add_argument("--k", type=int, default=None, help="importance samples (1000; quick 100)")
    p.add_argument("--n-test", type=int, default=None,
                   help="test images to score (10000; quick 200)")  # fmt: skip
    p.add_argument("--chunk-size", type=int, default=8192,
                   help="torchvae chunk_size for the timed run (8192, its default)")  # fmt: skip
    p.add_argument("--chunk-sizes", default="1024,8192,65536",
                   help="chunk sizes whose peak memory is measured")  # fmt: skip
    p.add_argument("--mem-n", type=int, default=None,
                   help="images for the memory runs (500; quick 50)")  # fmt: skip
    p.add_argument("--big-k", type=int, default=None,
                   help="the large k shown to fit (5000; quick 500)")  # fmt: skip
    p.add_argument("--train-epochs", type=int, default=None,
                   help="epochs of training before scoring (1; quick 0 = untrained)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pythae-batch-size", type=int, default=100,
                   help="get_nll's batch_size (its default, 100)")  # fmt: skip
    p.add_argument("--pythae-python", default=None)
    p.add_argument("--skip-pythae", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    k = args.k or (100 if args.quick else 1000)
    n = args.n_test or (200 if args.quick else 10_000)
    mem_n = args.mem_n or (50 if args.quick else 500)
    epochs = args.train_epochs if args.train_epochs is not None else (0 if args.quick else 1)
    from bench_train import pythae_python

    py_pythae = None if args.skip_pythae else pythae_python(args.pythae_python)
    failed = False
    with tempfile.TemporaryDirectory(prefix="torchvae-nll-") as tmp:
        work = Path(tmp)
        n_train = 4096 if args.quick else None
        name = B.prepare_data(args.data_dir, work, n_train, n, args.seed, args.synthetic)
        _train(work, epochs, args.seed)
        print(
            f"data: {name}; model trained {epochs} epoch(s); {n} test images, k={k}; "
            f"torch {torch.__version__}, {args.threads} threads",
            flush=True,
        )
        rows = []
        tv = _run(sys.executable, "torchvae", args, work, k=k, n=n, chunk_size=args.chunk_size)
        if isinstance(tv, str):
            print(f"torchvae failed: {tv}")
            return 1
        rows.append(
            [f"torchvae log_likelihood (chunk_size={args.chunk_size})",
             B.fmt(tv["seconds"]), B.fmt(tv["nll"]), B.fmt(tv["peak_rss_mb"], ".0f"), "1.00"]
        )  # fmt: skip
        if py_pythae is None:
            if not args.skip_pythae:
                print("skipped pythae: not installed (see benchmarks/README.md, --pythae-python)")
        else:
            py = _run(py_pythae, "pythae", args, work, k=k, n=n)
            if isinstance(py, str):
                print(f"pythae failed: {py}")
                failed = True
            else:
                rows.append(
                    [f"pythae get_nll (batch_size={args.pythae_batch_size})",
                     B.fmt(py["seconds"]), B.fmt(py["nll"]), B.fmt(py["peak_rss_mb"], ".0f"),
                     B.fmt(py["seconds"] / tv["seconds"])]
                )  # fmt: skip
        print()
        B.print_table(["estimator", "seconds", "NLL (nats)", "peak RSS MB", "x faster"], rows)
        if len(rows) == 2:
            ratio = py["seconds"] / tv["seconds"]  # type: ignore[index]
            print(f"{'met' if ratio >= 2.5 else 'NOT met'} torchvae >= 2.5x faster: {ratio:.2f}x")

        print(f"\ntorchvae's added peak memory by chunk_size and k ({mem_n} images):")
        mem_rows = []
        sizes = [int(s) for s in args.chunk_sizes.split(",")]
        big_k = args.big_k or (500 if args.quick else 5000)
        for chunk, kk in [(c, k) for c in sizes] + [(args.chunk_size, big_k)]:
            r = _run(sys.executable, "torchvae", args, work, k=kk, n=mem_n, chunk_size=chunk)
            if isinstance(r, str):
                mem_rows.append([str(chunk), str(kk), "failed", r, "-", "-"])
                failed = True
                continue
            mem_rows.append(
                [str(chunk), str(kk), B.fmt(r["seconds"]), B.fmt(r["added_mb"], ".0f"),
                 B.fmt(r["peak_rss_mb"], ".0f"), B.fmt(r["nll"])]
            )  # fmt: skip
        B.print_table(
            ["chunk_size", "k", "seconds", "added MB", "peak RSS MB", "NLL (nats)"], mem_rows
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
