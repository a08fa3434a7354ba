#!/usr/bin/env python3
"""Training speed of torchvae against the usual ways to train the same VAE, on CPU.

Every case trains the same model (MLP 784-400-20: fc1 784->400, fc21/fc22 400->20,
fc3 20->400, fc4 400->784, ReLU; Bernoulli/BCE likelihood) with Adam(lr=1e-3), batch 128,
fp32, in its own fresh process, on Fashion-MNIST (Debian's ``dataset-fashion-mnist``, or
``--data-dir``) or on synthetic MNIST-shaped uint8 data when that is absent. Cases run in
alternating order across repeats (forward, then reversed) so that drift in the machine's
speed falls on all of them alike.

Cases (``--cases``, comma-separated; ``--list`` shows them):
  pytorch-examples  pytorch/examples vae/main.py: torchvision dataset + ToTensor per image,
                    DataLoader(batch_size=128, shuffle=True) with no workers (the CPU path).
  textbook-w4       the textbook chapter's loop: the same, with num_workers=4 as the book.
  textbook-w0       the textbook loop with num_workers=0.
  bare              a bare loop over a preloaded float32 tensor, randperm indexing, with
                    torch.optim.Adam's default (foreach) implementation.
  bare-fused        the same with Adam(fused=True), the Trainer's default optimizer: the
                    reference for what the Trainer itself adds.
  bare-compile      the bare loop with torch.compile of the forward pass and loss.
  pythae            pythae's BaseTrainer with pythae.models.VAE (needs pythae installed).
  torchvae          torchvae's Trainer with its own TensorLoader (uint8 in memory), fp32,
                    and its default optimizer (Adam, lr=1e-3, PyTorch's fused kernel).
  torchvae-compile  the same with the Trainer's opt-in torch.compile.
  torchvae-bf16     the same with CPU bf16 autocast (opt-in).

Reported per case: s/epoch (median over epochs 2..N and repeats), samples/s, speed ratio
to each reference (reference s/epoch / case s/epoch: > 1 means faster), the child's peak
resident memory while training (data loaded, model trained; read before the evaluation,
whose peak is kept in the JSON as process_peak_rss_mb), and the final test -ELBO (nats:
summed over pixels, mean over the test images, one z per image). Timings never include
loading the data or evaluating.

Example:
    python benchmarks/bench_train.py --quick
    python benchmarks/bench_train.py --epochs 5 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _bench as B
import torch
from torch import Tensor

CASES = [
    "pytorch-examples",
    "textbook-w4",
    "textbook-w0",
    "bare",
    "bare-fused",
    "bare-compile",
    "pythae",
    "torchvae",
    "torchvae-compile",
    "torchvae-bf16",
]
QUICK_CASES = [c for c in CASES if not c.endswith("-compile")]
REFERENCES = ["pytorch-examples", "pythae", "bare", "bare-fused"]
BATCH_SIZE = 128
LR = 1e-3


@dataclass
class Ctx:
    work: Path
    epochs: int
    seed: int
    batch_size: int


# ----------------------------------------------------------------------------- cases


def _examples_train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any, epoch: int
) -> float:
    """pytorch/examples vae/main.py ``train(epoch)``, line for line (log_interval=10)."""
    model.train()
    train_loss = 0.0
    for batch_idx, (data, _) in enumerate(loader):
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = B.examples_loss(recon_batch, data, mu, logvar)
        loss.backward()  # type: ignore[no-untyped-call]
        train_loss += loss.item()
        optimizer.step()
        if batch_idx % 10 == 0:
            print(
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.dataset)} "
                f"({100.0 * batch_idx / len(loader):.0f}%)]\tLoss: {loss.item() / len(data):.6f}"
            )
    print(f"====> Epoch: {epoch} Average loss: {train_loss / len(loader.dataset):.4f}")
    return train_loss / len(loader.dataset)


def _textbook_train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any, epoch: int
) -> float:
    """The textbook chapter's loop (its ``x.view(batch_size, x_dim)`` made ``view(-1, 784)``)."""
    model.train()
    overall_loss = 0.0
    for _batch_idx, (x, _) in enumerate(loader):
        x = x.view(-1, 784)
        optimizer.zero_grad()
        x_hat, mean, log_var = model(x)
        loss = B.examples_loss(x_hat, x, mean, log_var)
        overall_loss += loss.item()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    print(f"Epoch {epoch}, Average Loss: {overall_loss / len(loader.dataset):.4f}")
    return overall_loss / len(loader.dataset)


def _torchvision_loader(ctx: Ctx, workers: int) -> Any:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    train = datasets.FashionMNIST(
        str(ctx.work), train=True, download=False, transform=transforms.ToTensor()
    )
    return DataLoader(
        train, batch_size=ctx.batch_size, shuffle=True, num_workers=workers, pin_memory=False
    )


def _examples_model_eval(model: B.ExamplesVAE) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    model.eval()
    return model


def case_dataloader(ctx: Ctx, workers: int, textbook: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    loader = _torchvision_loader(ctx, workers)
    load_s = time.perf_counter() - t0
    torch.manual_seed(ctx.seed)
    model = B.ExamplesVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    step = _textbook_train_epoch if textbook else _examples_train_epoch
    times = []
    for epoch in range(1, ctx.epochs + 1):
        t = time.perf_counter()
        step(model, optimizer, loader, epoch)
        times.append(time.perf_counter() - t)
    train_rss = B.peak_rss_mb()  # before the evaluation below
    x_test = B.load_float(ctx.work, train=False)
    return {
        "epoch_s": times,
        "n_train": len(loader.dataset),
        "load_s": load_s,
        "train_peak_rss_mb": train_rss,
        "test_neg_elbo": B.neg_elbo(_examples_model_eval(model), x_test),
    }


def case_bare(ctx: Ctx, compile_: bool, fused: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    x = B.load_float(ctx.work, train=True)
    load_s = time.perf_counter() - t0
    torch.manual_seed(ctx.seed)
    model = B.ExamplesVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=fused or None)

    def loss_of(xb: Tensor) -> Tensor:
        recon, mu, logvar = model(xb)
        return B.examples_loss(recon, xb, mu, logvar)

    step_loss = torch.compile(loss_of) if compile_ else loss_of
    g = torch.Generator().manual_seed(ctx.seed)
    n, bs = len(x), ctx.batch_size
    times = []
    for _ in range(ctx.epochs):
        t = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            loss = step_loss(x[perm[i : i + bs]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        times.append(time.perf_counter() - t)
    train_rss = B.peak_rss_mb()  # before the evaluation below
    x_test = B.load_float(ctx.work, train=False)
    return {
        "epoch_s": times,
        "n_train": n,
        "load_s": load_s,
        "train_peak_rss_mb": train_rss,
        "test_neg_elbo": B.neg_elbo(_examples_model_eval(model), x_test),
    }


def case_pythae(ctx: Ctx) -> dict[str, Any]:
    import logging

    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)

    class Enc(BaseEncoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.fc1 = torch.nn.Linear(784, 400)
            self.fc21 = torch.nn.Linear(400, 20)
            self.fc22 = torch.nn.Linear(400, 20)

        def forward(self, x: Tensor) -> Any:
            h1 = torch.relu(self.fc1(x.reshape(-1, 784)))
            return ModelOutput(embedding=self.fc21(h1), log_covariance=self.fc22(h1))

    class Dec(BaseDecoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.fc3 = torch.nn.Linear(20, 400)
            self.fc4 = torch.nn.Linear(400, 784)

        def forward(self, z: Tensor) -> Any:
            out = torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))
            return ModelOutput(reconstruction=out.reshape(-1, 1, 28, 28))

    class EpochTimer(TrainingCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, training_config: Any, **kwargs: Any) -> None:
            self._t = time.perf_counter()

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self._t)

    t0 = time.perf_counter()
    x = B.load_float(ctx.work, train=True, flat=False)
    train = BaseDataset(x, B.load_labels(ctx.work, train=True))
    load_s = time.perf_counter() - t0
    torch.manual_seed(ctx.seed)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(config, encoder=Enc(), decoder=Dec())
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        trainer = BaseTrainer(
            model,
            train_dataset=train,
            eval_dataset=None,
            training_config=BaseTrainerConfig(
                output_dir=out,
                num_epochs=ctx.epochs,
                learning_rate=LR,
                per_device_train_batch_size=ctx.batch_size,
                per_device_eval_batch_size=ctx.batch_size,
                optimizer_cls="Adam",
                no_cuda=True,
                seed=ctx.seed,
            ),
            callbacks=[timer],
        )
        trainer.train()
    model = trainer.model.eval()

    def forward(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        enc = model.encoder(xb)
        mu, log_var = enc.embedding, enc.log_covariance
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return model.decoder(z)["reconstruction"], mu, log_var

    train_rss = B.peak_rss_mb()  # before the evaluation below
    x_test = B.load_float(ctx.work, train=False)
    return {
        "epoch_s": timer.times,
        "n_train": len(train),
        "load_s": load_s,
        "train_peak_rss_mb": train_rss,
        "test_neg_elbo": B.neg_elbo(forward, x_test),
    }


def case_torchvae(ctx: Ctx, variant: str) -> dict[str, Any]:
    B.ensure_torchvae_importable()
    from torchvae.callbacks import Callback
    from torchvae.data import FashionMNIST, TensorLoader
    from torchvae.objectives.losses import ELBOLoss
    from torchvae.training.trainer import Trainer

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Trainer) -> None:
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer: Trainer) -> None:
            self.times.append(time.perf_counter() - self._t)

    t0 = time.perf_counter()
    train = FashionMNIST(ctx.work, train=True)
    loader = TensorLoader(
        train.data,
        train.targets,
        batch_size=ctx.batch_size,
        shuffle=True,
        seed=ctx.seed,
        flatten=True,
    )
    load_s = time.perf_counter() - t0
    torch.manual_seed(ctx.seed)
    model = B.torchvae_mlp()
    timer = EpochTimer()
    trainer = Trainer(
        model,
        loss=ELBOLoss(),
        callbacks=[timer],
        device="cpu",
        seed=ctx.seed,
        compile=variant == "compile",
        precision="bf16" if variant == "bf16" else "32",
    )
    trainer.fit(loader, epochs=ctx.epochs)
    model.eval()

    def forward(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = model(xb)
        return out.x_hat, out.mean, out.log_var

    train_rss = B.peak_rss_mb()  # before the evaluation below
    x_test = B.load_float(ctx.work, train=False)
    test = FashionMNIST(ctx.work, train=False)
    evaluated = trainer.evaluate(TensorLoader(test.data, batch_size=1000, flatten=True))
    return {
        "epoch_s": timer.times,
        "n_train": len(train),
        "load_s": load_s,
        "train_peak_rss_mb": train_rss,
        "test_neg_elbo": B.neg_elbo(forward, x_test),
        "trainer_evaluate": evaluated,
    }


def run_case(name: str, ctx: Ctx) -> dict[str, Any]:
    if name == "pytorch-examples":
        return case_dataloader(ctx, workers=0, textbook=False)
    if name.startswith("textbook-w"):
        return case_dataloader(ctx, workers=int(name.removeprefix("textbook-w")), textbook=True)
    if name in ("bare", "bare-fused", "bare-compile"):
        return case_bare(ctx, compile_=name == "bare-compile", fused=name == "bare-fused")
    if name == "pythae":
        return case_pythae(ctx)
    if name.startswith("torchvae"):
        return case_torchvae(ctx, name.removeprefix("torchvae").lstrip("-"))
    raise ValueError(f"unknown case {name!r}; choose from {', '.join(CASES)}")


def child_main(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    ctx = Ctx(Path(args.work), args.epochs, args.seed, args.batch_size)
    # import torch itself forks a helper process; only DataLoader workers should count.
    before = B.children_peak_rss_mb()
    result = run_case(args.child, ctx)
    result["process_peak_rss_mb"] = B.peak_rss_mb()
    after = B.children_peak_rss_mb()
    result["workers_peak_rss_mb"] = after if after > before else 0.0
    result["threads"] = torch.get_num_threads()
    B.write_result(args.result_file, result)


# ----------------------------------------------------------------------------- parent


def pythae_python(explicit: str | None) -> str | None:
    """An interpreter that can import pythae: ``explicit``, this one, or .venv-bench's."""
    if explicit:
        return explicit
    if importlib.util.find_spec("pythae") is not None:
        return sys.executable
    bench = B.REPO / ".venv-bench" / "bin" / "python"
    if bench.exists():
        ok = subprocess.run([str(bench), "-c", "import pythae"], capture_output=True).returncode
        if ok == 0:
            return str(bench)
    return None


def run_child(
    python: str, case: str, args: argparse.Namespace, work: Path, log: Path
) -> dict[str, Any] | str:
    """Run one case in a fresh process; its result, or the reason it failed."""
    result_file = work / f"result-{case}.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        python, str(Path(__file__).resolve()), "--child", case, "--work", str(work),
        "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
        "--batch-size", str(args.batch_size), "--result-file", str(result_file),
    ]  # fmt: skip
    with log.open("a") as f:
        f.write(f"\n===== {case}\n")
        f.flush()
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=B.child_env(args.threads)
        )
    if proc.returncode != 0 or not result_file.exists():
        section = log.read_text().rsplit(f"===== {case}\n", 1)[-1].splitlines()
        errors = [ln for ln in section if "Error" in ln and not ln.startswith(("W", " "))]
        return f"exit {proc.returncode}: " + (errors[-1] if errors else " / ".join(section[-3:]))
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def summarize(case: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [t for r in runs for t in (r["epoch_s"][1:] if len(r["epoch_s"]) > 1 else r["epoch_s"])]
    s_epoch = B.median(times)
    return {
        "case": case,
        "s_epoch": s_epoch,
        "s_epoch_min": min(times),
        "s_epoch_max": max(times),
        "samples_s": runs[0]["n_train"] / s_epoch,
        "peak_rss_mb": max(r["train_peak_rss_mb"] for r in runs),
        "process_peak_rss_mb": max(r["process_peak_rss_mb"] for r in runs),
        "workers_rss_mb": max(r["workers_peak_rss_mb"] for r in runs),
        "test_neg_elbo": B.median([r["test_neg_elbo"] for r in runs]),
        "epoch_s": [r["epoch_s"] for r in runs],
        "load_s": B.median([r["load_s"] for r in runs]),
        "trainer_evaluate_loss": B.median(
            [r["trainer_evaluate"]["loss"] for r in runs if "trainer_evaluate" in r]
        ),
    }


def report(
    summaries: dict[str, dict[str, Any]], skipped: dict[str, str], quick: bool = False
) -> None:
    headers = ["case", "s/epoch", "(min-max)", "samples/s"]
    refs = [r for r in REFERENCES if r in summaries]
    headers += [f"x vs {r}" for r in refs]
    headers += ["peak RSS MB (training)", "test -ELBO"]
    rows = []
    for case, s in summaries.items():
        spread = f"{s['s_epoch_min']:.2f}-{s['s_epoch_max']:.2f}"
        row = [case, B.fmt(s["s_epoch"], ".3f"), spread, B.fmt(s["samples_s"], ".0f")]
        row += [B.fmt(summaries[r]["s_epoch"] / s["s_epoch"]) for r in refs]
        rss = B.fmt(s["peak_rss_mb"], ".0f")
        if s["workers_rss_mb"] > 1:
            rss += f" (+children {s['workers_rss_mb']:.0f})"
        row += [rss, B.fmt(s["test_neg_elbo"], ".2f")]
        rows.append(row)
    B.print_table(headers, rows)
    for case, why in skipped.items():
        print(f"skipped {case}: {why}")
    tv = summaries.get("torchvae")
    if tv is None:
        return
    print(
        f"\n(torchvae's own Trainer.evaluate gives test -ELBO {tv['trainer_evaluate_loss']:.2f}; "
        "the table's column uses one shared function for every case)"
    )
    if quick:
        print(
            "smoke run: too few steps for the targets, which are judged only without --quick "
            "(below, 'smoke' stands for met / NOT met)"
        )

    def verdict(ok: bool) -> str:
        return "smoke" if quick else ("met" if ok else "NOT met")

    checks = [
        ("pytorch-examples", 2.0, "torchvae >= 2x faster than pytorch-examples"),
        ("pythae", 1.25, "torchvae >= 1.25x faster than pythae"),
        ("bare", 0.95, "torchvae within 5% of bare (ratio >= 0.95)"),
    ]
    for ref, need, what in checks:
        if ref in summaries:
            ratio = summaries[ref]["s_epoch"] / tv["s_epoch"]
            print(f"{verdict(ratio >= need):7s} {what}: {ratio:.2f}x")
    if "bare-fused" in summaries:
        ratio = summaries["bare-fused"]["s_epoch"] / tv["s_epoch"]
        print(f"(info)  torchvae vs bare-fused (same optimizer, the Trainer's cost): {ratio:.2f}x")
    if "pytorch-examples" in summaries:
        ok = tv["peak_rss_mb"] <= summaries["pytorch-examples"]["peak_rss_mb"]
        print(
            f"{verdict(ok):7s} torchvae peak RSS <= pytorch-examples': "
            f"{tv['peak_rss_mb']:.0f} vs {summaries['pytorch-examples']['peak_rss_mb']:.0f} MB"
        )
    for variant in ("torchvae-compile", "torchvae-bf16"):
        if variant in summaries:
            v = summaries[variant]
            print(
                f"{variant}: {tv['s_epoch'] / v['s_epoch']:.2f}x torchvae's speed, "
                f"test -ELBO {v['test_neg_elbo'] - tv['test_neg_elbo']:+.2f} nats"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Cases: " + ", ".join(CASES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run (CI): 4096 training images, 1000 test, 2 epochs, 1 repeat, "
                   "no compile cases unless --cases names them")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 3; quick 2)")
    p.add_argument("--repeats", type=int, default=None, help="runs per case (default 2; quick 1)")
    p.add_argument("--cases", default=None, help="comma-separated cases (default: all)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"folder with the four Fashion-MNIST IDX files (.gz or not); default "
                   f"{B.DEBIAN_DIR}, else synthetic data")  # fmt: skip
    p.add_argument("--synthetic", action="store_true", help="use synthetic data even if found")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every case (2)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="batch size (128)")
    p.add_argument("--train-size", type=int, default=None, help="use the first N training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pythae-python", default=None,
                   help="interpreter with pythae installed (default: this one, or "
                   ".venv-bench/bin/python)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.add_argument("--log", type=Path, default=None, help="keep the cases' own output here")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.list:
        print("\n".join(CASES))
        return 0
    args.epochs = args.epochs or (2 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 2)
    cases = args.cases.split(",") if args.cases else (QUICK_CASES if args.quick else CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    n_train = args.train_size or (4096 if args.quick else None)
    n_test = 1000 if args.quick else None

    skipped: dict[str, str] = {}
    pythons = {c: sys.executable for c in cases}
    if "pythae" in cases:
        py = pythae_python(args.pythae_python)
        if py is None:
            skipped["pythae"] = (
                "pythae is not installed (pip install pythae, best in its own venv: see "
                "benchmarks/README.md; or pass --pythae-python)"
            )
            cases.remove("pythae")
        else:
            pythons["pythae"] = py

    with tempfile.TemporaryDirectory(prefix="torchvae-bench-") as tmp:
        work = Path(tmp)
        data_name = B.prepare_data(
            args.data_dir, work, n_train, n_test, args.seed, synthetic_only=args.synthetic
        )
        print(
            f"data: {data_name}; torch {torch.__version__}, {args.threads} threads, batch "
            f"{args.batch_size}, {args.epochs} epochs x {args.repeats} repeats; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            flush=True,
        )
        log = work / "children.log"
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
        for r in range(args.repeats):
            for case in cases if r % 2 == 0 else cases[::-1]:
                t = time.perf_counter()
                out = run_child(pythons[case], case, args, work, log)
                if isinstance(out, str):
                    skipped[case] = out
                    print(f"  [{r + 1}/{args.repeats}] {case}: FAILED {out}", flush=True)
                    continue
                runs[case].append(out)
                print(
                    f"  [{r + 1}/{args.repeats}] {case}: epochs "
                    + " ".join(f"{s:.2f}" for s in out["epoch_s"])
                    + f" s ({time.perf_counter() - t:.0f} s in all)",
                    flush=True,
                )
        if args.log:
            args.log.write_text(log.read_text())
            print(f"(the cases' own output: {args.log})")
        summaries = {c: summarize(c, runs[c]) for c in cases if runs[c]}
        for c in list(skipped):
            if c in summaries:
                skipped.pop(c)
        print()
        report(summaries, skipped, args.quick)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "data": data_name,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "summaries": summaries,
                        "skipped": skipped,
                    },
                    indent=1,
                )
            )
    return 1 if any(c in skipped for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
