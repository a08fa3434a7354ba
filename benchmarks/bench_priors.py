#!/usr/bin/env python3
"""Priors and posteriors: seconds per epoch and test NLL of torchvae's models against pythae's.

Every case trains the same networks, the classic one-hidden-layer MLP of pytorch/examples'
``vae/main.py`` (encoder 784 -> 400 -> 2 x 20, decoder 20 -> 400 -> 784, ReLU), with a
Bernoulli likelihood on grey levels in [0, 1] (no binarization; BCE summed over the 784
pixels), Adam(lr=1e-3), batch 128, fp32, for 10 epochs on Fashion-MNIST, then scores the
10k test images by importance sampling with k=1000 samples of q(z|x) each. Only the prior
and the posterior change between the torchvae cases:

  normal          StandardNormal prior, DiagonalGaussian posterior (the defaults)
  mixture         MixturePrior(n_components=10): a learned mixture of 10 diagonal Gaussians
  vamp            VampPrior(n_components=500)
  flow-posterior  FlowPosterior(transforms=2, hidden_features=(128, 128, 128)): an inverse
                  autoregressive flow of the size of pythae's VAE_IAF default
  flow-prior      FlowPrior(): its defaults, 3 MAF transforms with hidden (256, 256)

and the pythae 0.1.2 cases (pythae's own BaseTrainer, models and get_nll):

  pythae-vae      VAE
  pythae-vamp     VAMP(number_components=500)
  pythae-iaf      VAE_IAF(n_made_blocks=2, n_hidden_in_made=3, hidden_size=128)

torchvae trains with its Trainer (default optimizer: Adam, PyTorch's fused kernel) fed by
its TensorLoader, and scores with ``log_likelihood``; pythae with ``BaseTrainer`` on a
``BaseDataset`` of preloaded float tensors and its models' ``get_nll`` (with
``batch_size=k``, so that each image's k samples are one batch). Both losses are nats per
image: summed over pixels and latent dimensions, averaged over the batch.

Then the default model at this checkout against the same model at the commit before the
core rewrite (``--old-ref``, extracted with ``git archive`` into a temporary folder),
alternating in pairs, timing only.

Each run is a fresh process; the cases' order alternates across repeats (forward, then
reversed) and repeat ``r`` trains every case with seed ``seed + r``. Reported: s/epoch (the
median of a run's epochs; median and min-max over repeats), the speed ratio to pythae's
same model (pythae's s/epoch / torchvae's: > 1 means faster), the NLL in nats (median and
min-max over repeats) and its difference to pythae's, the load average of the machine.

Example:
    python benchmarks/bench_priors.py --quick --skip-pythae
    python benchmarks/bench_priors.py --json priors.json      # the full run, 30-60 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _bench as B
import torch
from torch import Tensor, nn

TORCHVAE_CASES = {
    "normal": "standard normal prior, diagonal Gaussian posterior (the default)",
    "mixture": "MixturePrior(n_components=10)",
    "vamp": "VampPrior(n_components=500)",
    "flow-posterior": "FlowPosterior(transforms=2, hidden_features=(128, 128, 128)), IAF",
    "flow-prior": "FlowPrior() (3 MAF transforms, hidden (256, 256))",
}
PYTHAE_CASES = {
    "pythae-vae": "pythae VAE",
    "pythae-vamp": "pythae VAMP(number_components=500)",
    "pythae-iaf": "pythae VAE_IAF(n_made_blocks=2, n_hidden_in_made=3, hidden_size=128)",
}
CASES = {**TORCHVAE_CASES, **PYTHAE_CASES}
# Each torchvae model and pythae's same model.
SAME_MODEL = {"normal": "pythae-vae", "vamp": "pythae-vamp", "flow-posterior": "pythae-iaf"}
OLD_REF = "3075d78"
LR = 1e-3
NLL_TARGET = 0.3  # nats: torchvae's NLL at most this much above pythae's same model
DEFAULT_TOLERANCE = 0.97  # the default model's speed at least 97% of the old commit's


@dataclass
class Ctx:
    work: Path
    epochs: int
    seed: int
    batch_size: int
    k: int
    pythae_nll_batch: int


# ----------------------------------------------------------------------------- cases


def _torchvae_model(case: str) -> nn.Module:
    from torchvae import VAE, Decoder, Encoder

    parts: dict[str, Any] = {}
    if case == "mixture":
        from torchvae.priors import MixturePrior

        parts["prior"] = MixturePrior(n_components=10)
    elif case == "vamp":
        from torchvae.priors import VampPrior

        parts["prior"] = VampPrior(n_components=500)
    elif case == "flow-posterior":
        from torchvae.posteriors import FlowPosterior

        parts["posterior"] = FlowPosterior(transforms=2, hidden_features=(128, 128, 128))
    elif case == "flow-prior":
        from torchvae.priors import FlowPrior

        parts["prior"] = FlowPrior()
    elif case != "normal":
        raise ValueError(f"unknown torchvae case {case!r}")
    # Keyword-free for the default, so that the commit before the core rewrite builds it too.
    return VAE(
        Encoder(784, [400], 20, activation=nn.ReLU),
        Decoder(20, [400], 784, activation=nn.ReLU),
        **parts,
    )


def case_torchvae(ctx: Ctx, case: str) -> dict[str, Any]:
    import torchvae
    from torchvae import Callback, ELBOLoss, FashionMNIST, TensorLoader, Trainer

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Trainer) -> None:
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer: Trainer) -> None:
            self.times.append(time.perf_counter() - self._t)

    train = FashionMNIST(ctx.work, train=True)
    loader = TensorLoader(
        train.data, batch_size=ctx.batch_size, shuffle=True, seed=ctx.seed, flatten=True
    )
    torch.manual_seed(ctx.seed)
    model = _torchvae_model(case)
    timer = EpochTimer()
    trainer = Trainer(model, loss=ELBOLoss(), callbacks=[timer], device="cpu", seed=ctx.seed)
    trainer.fit(loader, epochs=ctx.epochs)
    result: dict[str, Any] = {"epoch_s": timer.times, "torchvae": str(torchvae.__file__)}
    if ctx.k:
        from torchvae import log_likelihood

        model.eval()
        x_test = B.load_float(ctx.work, train=False)
        g = torch.Generator().manual_seed(ctx.seed + 1)
        t = time.perf_counter()
        ll = log_likelihood(model, x_test, k=ctx.k, generator=g)
        result.update(nll=-float(ll.mean()), nll_s=time.perf_counter() - t)
    return result


def _pythae_networks() -> tuple[nn.Module, nn.Module]:
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Enc(BaseEncoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.fc1 = nn.Linear(784, 400)
            self.fc21 = nn.Linear(400, 20)
            self.fc22 = nn.Linear(400, 20)

        def forward(self, x: Tensor) -> Any:
            h1 = torch.relu(self.fc1(x.reshape(-1, 784)))
            return ModelOutput(embedding=self.fc21(h1), log_covariance=self.fc22(h1))

    class Dec(BaseDecoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.fc3 = nn.Linear(20, 400)
            self.fc4 = nn.Linear(400, 784)

        def forward(self, z: Tensor) -> Any:
            out = torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))
            return ModelOutput(reconstruction=out.reshape(-1, 1, 28, 28))

    return Enc(), Dec()


def _pythae_model(case: str) -> Any:
    from pythae import models as pm

    common = {"input_dim": (1, 28, 28), "latent_dim": 20, "reconstruction_loss": "bce"}
    encoder, decoder = _pythae_networks()
    if case == "pythae-vae":
        return pm.VAE(pm.VAEConfig(**common), encoder=encoder, decoder=decoder)
    if case == "pythae-vamp":
        config = pm.VAMPConfig(**common, number_components=500)
        return pm.VAMP(config, encoder=encoder, decoder=decoder)
    if case == "pythae-iaf":
        config = pm.VAE_IAF_Config(**common, n_made_blocks=2, n_hidden_in_made=3, hidden_size=128)
        return pm.VAE_IAF(config, encoder=encoder, decoder=decoder)
    raise ValueError(f"unknown pythae case {case!r}")


def case_pythae(ctx: Ctx, case: str) -> dict[str, Any]:
    import logging

    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)

    class EpochTimer(TrainingCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, training_config: Any, **kwargs: Any) -> None:
            self._t = time.perf_counter()

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self._t)

    x = B.load_float(ctx.work, train=True, flat=False)
    train = BaseDataset(x, B.load_labels(ctx.work, train=True))
    torch.manual_seed(ctx.seed)
    model = _pythae_model(case)
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
    result: dict[str, Any] = {"epoch_s": timer.times}
    if ctx.k:
        model = trainer.model.eval()
        x_test = B.load_float(ctx.work, train=False, flat=False)
        # get_nll draws batch_size samples per batch, n_samples // batch_size batches.
        batch = ctx.pythae_nll_batch or ctx.k
        torch.manual_seed(ctx.seed + 1)
        t = time.perf_counter()
        with torch.no_grad():
            ll = model.get_nll(x_test, n_samples=ctx.k, batch_size=batch)
        result.update(nll=-float(ll), nll_s=time.perf_counter() - t)
    return result


def child_main(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    ctx = Ctx(Path(args.work), args.epochs, args.seed, args.batch_size, args.k, args.nll_batch)
    case = args.child
    result = case_pythae(ctx, case) if case in PYTHAE_CASES else case_torchvae(ctx, case)
    result["threads"] = torch.get_num_threads()
    B.write_result(args.result_file, result)


# ----------------------------------------------------------------------------- parent


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def old_source(ref: str, tmp: Path) -> Path | str:
    """``src/`` of commit ``ref`` extracted into ``tmp``, or why it could not be."""
    dest = tmp / f"torchvae-{ref}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(B.REPO), "archive", ref, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return f"git archive {ref} failed: {archive.stderr.decode().strip()}"
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def run_child(
    python: str, case: str, args: argparse.Namespace, work: Path, seed: int, **kw: Any
) -> dict[str, Any] | str:
    """Run one case in a fresh process; its result, or the reason it failed."""
    result_file = work / "result.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        python, str(Path(__file__).resolve()), "--child", case, "--work", str(work),
        "--epochs", str(kw.get("epochs", args.epochs)), "--threads", str(args.threads),
        "--seed", str(seed), "--batch-size", str(args.batch_size), "--k", str(kw.get("k", args.k)),
        "--nll-batch", str(args.pythae_nll_batch), "--result-file", str(result_file),
    ]  # fmt: skip
    env = B.child_env(args.threads)
    src = kw.get("src", B.REPO / "src")  # the checkout's torchvae, first on the path
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    log: Path = args.log_file
    with log.open("a") as f:
        f.write(f"\n===== {case} seed {seed}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0 or not result_file.exists():
        section = log.read_text().rsplit(f"===== {case} seed {seed}\n", 1)[-1].splitlines()
        errors = [ln for ln in section if "Error" in ln and not ln.startswith(("W", " "))]
        return f"exit {proc.returncode}: " + (errors[-1] if errors else " / ".join(section[-3:]))
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def spread(values: list[float], spec: str) -> str:
    """``median (min-max)``, or the single value."""
    if len(values) == 1:
        return format(values[0], spec)
    low, high = format(min(values), spec), format(max(values), spec)
    return f"{format(B.median(values), spec)} ({low}-{high})"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    per_run = [B.median(r["epoch_s"]) for r in runs]
    nll = [r["nll"] for r in runs if "nll" in r]
    return {
        "s_epoch": B.median(per_run),
        "s_epoch_runs": per_run,
        "nll": B.median(nll) if nll else None,
        "nll_runs": nll,
        "nll_s": B.median([r["nll_s"] for r in runs if "nll_s" in r]) if nll else None,
    }


def report(s: dict[str, dict[str, Any]], default: dict[str, Any] | None, quick: bool) -> None:
    rows = []
    for case, summary in s.items():
        row = [case, CASES[case], spread(summary["s_epoch_runs"], ".2f")]
        ref = s.get(SAME_MODEL.get(case, ""))
        row.append(B.fmt(ref["s_epoch"] / summary["s_epoch"]) if ref else "-")
        nll = summary["nll_runs"]
        row.append(spread(nll, ".2f") if nll else "-")
        delta = ref["nll"] is not None and summary["nll"] is not None if ref else False
        row.append(f"{summary['nll'] - ref['nll']:+.2f}" if ref and delta else "-")
        row.append(B.fmt(summary["nll_s"], ".0f") if summary["nll_s"] else "-")
        rows.append(row)
    headers = ["case", "model", "s/epoch (min-max)", "x vs pythae", "NLL nats (min-max)"]
    B.print_table([*headers, "Δ NLL vs pythae", "NLL s"], rows)
    verdict = "smoke" if quick else None
    if quick:
        print("smoke run: too few steps for the targets ('smoke' stands for met / NOT met)")
    for case, ref in SAME_MODEL.items():
        if case in s and ref in s and s[case]["nll"] is not None and s[ref]["nll"] is not None:
            speed = s[ref]["s_epoch"] / s[case]["s_epoch"]
            delta = s[case]["nll"] - s[ref]["nll"]
            ok = delta <= NLL_TARGET and speed > 1
            print(
                f"{verdict or ('met' if ok else 'NOT met'):7s} {case} vs {ref}: NLL "
                f"{delta:+.2f} nats (target <= +{NLL_TARGET}), {speed:.2f}x pythae's speed "
                "(target > 1)"
            )
    if default is None:
        return
    ratios = default["ratios"]
    print(f"\nThe default model, this checkout against {default['ref']} (pairs, alternating):")
    B.print_table(
        ["pair", "s/epoch now", f"s/epoch at {default['ref']}", "old / now"],
        [
            [str(i + 1), f"{n:.3f}", f"{o:.3f}", f"{r:.3f}"]
            for i, (n, o, r) in enumerate(zip(default["new"], default["old"], ratios, strict=True))
        ],
    )
    ratio = B.median(ratios)
    ok = ratio >= DEFAULT_TOLERANCE
    print(
        f"{verdict or ('met' if ok else 'NOT met'):7s} the default no slower than at "
        f"{default['ref']} (within 3%): old/now {spread(ratios, '.3f')} (target >= "
        f"{DEFAULT_TOLERANCE})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Cases: " + ", ".join(CASES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 4096 training images, 200 test, 2 epochs, k=20, 1 repeat, "
                   "1 pair against the old commit")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (10; quick 2)")
    p.add_argument("--repeats", type=int, default=None, help="runs per case (2; quick 1)")
    p.add_argument("--k", type=int, default=None, help="importance samples (1000; quick 20)")
    p.add_argument("--cases", default=None, help="comma-separated cases (default: all)")
    p.add_argument("--skip-pythae", action="store_true", help="run no pythae case")
    p.add_argument(
        "--pythae-python",
        default=None,
        help="interpreter with pythae (default: this one, or .venv-bench/bin/python)",
    )
    p.add_argument("--pythae-nll-batch", type=int, default=0,
                   help="get_nll's batch_size (0: k, one batch per image)")  # fmt: skip
    p.add_argument("--old-ref", default=OLD_REF,
                   help=f"commit whose default model the checkout's is timed against ({OLD_REF}, "
                   "the one before the core rewrite); '' to skip")  # fmt: skip
    p.add_argument(
        "--default-pairs",
        type=int,
        default=None,
        help="alternating pairs of runs, now and at --old-ref (4; quick 1)",
    )
    p.add_argument("--default-epochs", type=int, default=None,
                   help="epochs of those runs (--epochs)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"folder with the four Fashion-MNIST IDX files; default {B.DEBIAN_DIR}, "
                   "else synthetic data")  # fmt: skip
    p.add_argument("--synthetic", action="store_true", help="use synthetic data even if found")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every case (2)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    p.add_argument("--log", type=Path, default=None, help="keep the cases' own output here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    p.add_argument("--nll-batch", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    from bench_train import pythae_python

    args.epochs = args.epochs or (2 if args.quick else 10)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.k = args.k if args.k is not None else (20 if args.quick else 1000)
    pairs = args.default_pairs if args.default_pairs is not None else (1 if args.quick else 4)
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    skipped: dict[str, str] = {}
    py_pythae = None if args.skip_pythae else pythae_python(args.pythae_python)
    if any(c in PYTHAE_CASES for c in cases) and py_pythae is None:
        why = "--skip-pythae" if args.skip_pythae else "pythae is not installed (see README.md)"
        skipped.update({c: why for c in cases if c in PYTHAE_CASES})
        cases = [c for c in cases if c not in PYTHAE_CASES]
    pythons = {c: py_pythae if c in PYTHAE_CASES else sys.executable for c in cases}
    start = time.perf_counter()
    loads: list[dict[str, Any]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="torchvae-priors-") as tmp:
        work = Path(tmp)
        args.log_file = args.log or work / "children.log"
        data = B.prepare_data(
            args.data_dir,
            work,
            4096 if args.quick else None,
            200 if args.quick else None,
            args.seed,
            synthetic_only=args.synthetic,
        )
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        head = subprocess.run(
            ["git", "-C", str(B.REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(
            f"data: {data}; torch {torch.__version__}, {args.threads} threads, batch "
            f"{args.batch_size}, {args.epochs} epochs x {args.repeats} repeats, k={args.k}; "
            f"checkout {head or '?'}; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs\nuptime at start: {uptime}",
            flush=True,
        )

        default: dict[str, Any] | None = None
        if args.old_ref and pairs and "normal" in cases:
            src = old_source(args.old_ref, work)
            if isinstance(src, str):
                print(f"skipped the default against {args.old_ref}: {src}")
            else:
                default = {"ref": args.old_ref, "new": [], "old": [], "ratios": [], "load": []}
                epochs = args.default_epochs or args.epochs
                for i in range(pairs):
                    got: dict[str, float] = {}
                    for which in ("new", "old") if i % 2 == 0 else ("old", "new"):
                        before = load()
                        out = run_child(
                            sys.executable, "normal", args, work, args.seed + i, epochs=epochs,
                            k=0, **({"src": src} if which == "old" else {}),
                        )  # fmt: skip
                        if isinstance(out, str):
                            print(f"  default {which}: FAILED {out}", flush=True)
                            failed = True
                            break
                        got[which] = B.median(out["epoch_s"])
                        default["load"].append(before)
                        print(
                            f"  [pair {i + 1}/{pairs}] default {which} ({out['torchvae']}): "
                            f"epochs " + " ".join(f"{t:.2f}" for t in out["epoch_s"])
                            + f" s; load {before}",
                            flush=True,
                        )  # fmt: skip
                    if len(got) == 2:
                        default["new"].append(got["new"])
                        default["old"].append(got["old"])
                        default["ratios"].append(got["old"] / got["new"])
                if not default["ratios"]:
                    default = None

        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
        for r in range(args.repeats):
            seed = args.seed + r
            for case in cases if r % 2 == 0 else cases[::-1]:
                t, before = time.perf_counter(), load()
                out = run_child(pythons[case], case, args, work, seed)  # type: ignore[arg-type]
                loads.append({"case": case, "repeat": r, "load_before": before, "after": load()})
                if isinstance(out, str):
                    skipped[case] = out
                    failed = True
                    print(f"  [{r + 1}/{args.repeats}] {case}: FAILED {out}", flush=True)
                    continue
                runs[case].append(out | {"seed": seed, "load": before})
                nll = f"NLL {out['nll']:.2f} ({out['nll_s']:.0f} s)" if "nll" in out else ""
                print(
                    f"  [{r + 1}/{args.repeats}] {case}: epochs "
                    + " ".join(f"{s:.2f}" for s in out["epoch_s"])
                    + f" s; {nll}; {time.perf_counter() - t:.0f} s in all; load {before}",
                    flush=True,
                )
        uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        summaries = {c: summarize(runs[c]) for c in cases if runs[c]}
        print(f"\nuptime at the end: {uptime_end}; {time.perf_counter() - start:.0f} s in all\n")
        report(summaries, default, args.quick)
        for case, why in skipped.items():
            print(f"skipped {case}: {why}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "data": data,
                        "checkout": head,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "uptime_start": uptime,
                        "uptime_end": uptime_end,
                        "loads": loads,
                        "models": {c: CASES[c] for c in summaries},
                        "summaries": summaries,
                        "runs": runs,
                        "default_vs_old": default,
                        "skipped": skipped,
                    },
                    indent=1,
                )
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
