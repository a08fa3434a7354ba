#!/usr/bin/env python3
"""Model families on Fashion-MNIST: importance-weighted test NLL and s/epoch, torchvae and pythae.

Every case trains for ``--epochs`` (10) epochs, batch 128, Adam at 1e-3, fp32, CPU, in its
own fresh process, on the same data (Debian's ``dataset-fashion-mnist``, ``--data-dir``,
or synthetic MNIST-shaped data), with a Bernoulli likelihood on the [0, 1] pixels. Then
every trained model is scored by the *same* estimator, in torchvae (for pythae's
models in a fresh process, after their weights are copied into the identical model):
``torchvae.log_likelihood`` with ``--nll-k`` (1000) importance samples over the 10k test
images, and the test -ELBO with one z per image.

Cases (``--cases``; ``--list`` shows them), the VAE 784-400-20 (ReLU) unless named:
  vae               torchvae Trainer, ELBOLoss.
  hierarchical      HierarchicalVAE.burda(): 784-[200,200]-100-[100,100]-50, tanh,
                    Ladder VAE inference, ELBOLoss.
  hierarchical-iwae the same trained with IWAELoss(k).
  iwae              IWAELoss(k).              pythae-iwae   pythae IWAE(number_samples=k)
  miwae             MIWAELoss(k, m).          pythae-miwae  pythae MIWAE (see below)
  piwae             PIWAELoss(model, k, m).   pythae-piwae  pythae PIWAE, its
                                                            CoupledOptimizerTrainer
  ciwae             CIWAELoss(k, beta).       pythae-ciwae  pythae CIWAE(number_samples=k, beta)
  iwae-dreg         DReGIWAELoss(model, k).
  vamp-iwae         IWAELoss(k) with a VampPrior(n_components=500), as in the priors benchmark.

pythae 0.1.2's MIWAE and PIWAE normalize the importance weights over the axis of size
``number_gradient_estimates`` and average over ``number_samples``: their inner bound runs
over ``number_gradient_estimates``. So that both libraries optimize the same
MIWAE(K=k, M=m), pythae gets ``number_gradient_estimates=k, number_samples=m``. pythae's
``HVAE`` is the Hamiltonian VAE, not a hierarchical one: the hierarchical cases have no
pythae counterpart.

Reported: s/epoch (median of epochs 2..N, min-max), pythae's s/epoch over torchvae's for
the same objective (> 1: torchvae faster), the NLL and -ELBO in nats, the NLL difference to
pythae's, and the machine's load average during each case. Cases run in the order above,
each torchvae case next to its pythae counterpart.

``--device cuda`` trains both libraries' cases on the GPU (epochs timed between device
synchronisations; the data on the GPU for torchvae, as its ``TensorLoader`` allows, and
moved per batch by pythae's trainer); the scoring stays on the CPU.

With ``--gemm-floor`` each torchvae case, after its weights are saved, profiles
``--floor-steps`` (40) more training steps and reports the CPU time of its matrix products
per epoch: the time its step would take if everything else were free. pythae's case runs
the same products (the same layers on the same number of samples), so pythae's s/epoch
over this floor bounds the speed-up any implementation of the objective can reach here.

Example:
    python benchmarks/bench_families.py --quick --skip-pythae
    python benchmarks/bench_families.py                       # 10 epochs, k=1000 NLL
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
from pathlib import Path
from typing import Any

import _bench as B
import torch
from torch import Tensor, nn

TORCHVAE = ["vae", "hierarchical", "hierarchical-iwae", "iwae", "miwae", "piwae", "ciwae"]
TORCHVAE += ["iwae-dreg", "vamp-iwae"]
PYTHAE = ["pythae-iwae", "pythae-miwae", "pythae-piwae", "pythae-ciwae"]
ORDER = [
    "vae", "hierarchical", "hierarchical-iwae", "iwae", "pythae-iwae", "miwae", "pythae-miwae",
    "piwae", "pythae-piwae", "ciwae", "pythae-ciwae", "iwae-dreg", "vamp-iwae",
]  # fmt: skip
LR = 1e-3
# pythae's Enc/Dec layers and the torchvae MLP's, for copying weights.
NAMES = {
    "encoder.fc1": "encoder.hidden.0",
    "encoder.fc21": "encoder.mean",
    "encoder.fc22": "encoder.log_var",
    "decoder.fc3": "decoder.hidden.0",
    "decoder.fc4": "decoder.output",
}


def _model(case: str) -> nn.Module:
    B.ensure_torchvae_importable()
    from torchvae.models.hierarchical import HierarchicalVAE
    from torchvae.priors import VampPrior

    if case.startswith("hierarchical"):
        return HierarchicalVAE.burda()
    if case.startswith("vamp"):
        return B.torchvae_mlp(prior=VampPrior(n_components=500))
    return B.torchvae_mlp()


def _loss(case: str, model: nn.Module, args: argparse.Namespace) -> nn.Module:
    from torchvae.objectives.iwae import CIWAELoss, DReGIWAELoss, MIWAELoss, PIWAELoss
    from torchvae.objectives.losses import ELBOLoss, IWAELoss

    k, m = args.k, args.m
    losses: dict[str, Any] = {
        "vae": ELBOLoss,
        "hierarchical": ELBOLoss,
        "hierarchical-iwae": lambda: IWAELoss(k),
        "iwae": lambda: IWAELoss(k),
        "miwae": lambda: MIWAELoss(k, m),
        "piwae": lambda: PIWAELoss(model, k, m),  # type: ignore[arg-type]
        "ciwae": lambda: CIWAELoss(k, args.beta),
        "iwae-dreg": lambda: DReGIWAELoss(model, k),  # type: ignore[arg-type]
        "vamp-iwae": lambda: IWAELoss(k),
    }
    loss: nn.Module = losses[case]()
    return loss


def _load() -> float:
    return os.getloadavg()[0]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_torchvae(case: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    B.ensure_torchvae_importable()
    from torchvae.callbacks import Callback
    from torchvae.data.mnist import FashionMNIST, TensorLoader
    from torchvae.training.trainer import Trainer

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.loads: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Trainer) -> None:
            _sync(args.device)
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer: Trainer) -> None:
            _sync(args.device)
            self.times.append(time.perf_counter() - self._t)
            self.loads.append(_load())

    train = FashionMNIST(work, train=True)
    loader = TensorLoader(
        train.data, batch_size=args.batch_size, shuffle=True, seed=args.seed, flatten=True,
        device=args.device,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    model = _model(case)
    timer = EpochTimer()
    loss = _loss(case, model, args)
    trainer = Trainer(model, loss=loss, callbacks=[timer], device=args.device, seed=args.seed)
    trainer.fit(loader, epochs=args.epochs)
    torch.save(model.state_dict(), work / f"weights-{case}.pt")
    # Copies: the timer is still a callback of the trainer the floor trains further.
    result: dict[str, Any] = {"epoch_s": list(timer.times), "loads": list(timer.loads)}
    if args.gemm_floor:
        rows = args.floor_steps * args.batch_size
        few = TensorLoader(train.data[:rows], batch_size=args.batch_size, flatten=True)
        result["gemm_s"] = B.profiled_seconds_per_step(trainer, few, args.epochs) * len(loader)
    return result


def train_pythae(case: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import logging

    import pythae.models as pm
    from pythae.data.datasets import BaseDataset
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import (
        BaseTrainer,
        BaseTrainerConfig,
        CoupledOptimizerTrainer,
        CoupledOptimizerTrainerConfig,
    )
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
            self.loads: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, training_config: Any, **kwargs: Any) -> None:
            _sync(args.device)
            self._t = time.perf_counter()

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            _sync(args.device)
            self.times.append(time.perf_counter() - self._t)
            self.loads.append(_load())

    x = B.load_float(work, train=True, flat=False)
    train = BaseDataset(x, B.load_labels(work, train=True))
    torch.manual_seed(args.seed)
    common = {"input_dim": (1, 28, 28), "latent_dim": 20, "reconstruction_loss": "bce"}
    k, m = args.k, args.m
    kind = case.removeprefix("pythae-")
    if kind == "iwae":
        model = pm.IWAE(pm.IWAEConfig(**common, number_samples=k), encoder=Enc(), decoder=Dec())
    elif kind == "ciwae":
        config = pm.CIWAEConfig(**common, number_samples=k, beta=args.beta)
        model = pm.CIWAE(config, encoder=Enc(), decoder=Dec())
    else:  # the inner bound runs over number_gradient_estimates (see the module's docstring)
        cls, cfg = (pm.MIWAE, pm.MIWAEConfig) if kind == "miwae" else (pm.PIWAE, pm.PIWAEConfig)
        config = cfg(**common, number_gradient_estimates=k, number_samples=m)
        model = cls(config, encoder=Enc(), decoder=Dec())
    timer = EpochTimer()
    settings: dict[str, Any] = {
        "num_epochs": args.epochs,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "no_cuda": args.device != "cuda",
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory() as out:
        if kind == "piwae":
            trainer: Any = CoupledOptimizerTrainer(
                model,
                train_dataset=train,
                training_config=CoupledOptimizerTrainerConfig(
                    output_dir=out, encoder_learning_rate=LR, decoder_learning_rate=LR, **settings
                ),
                callbacks=[timer],
            )
        else:
            trainer = BaseTrainer(
                model,
                train_dataset=train,
                training_config=BaseTrainerConfig(
                    output_dir=out, learning_rate=LR, optimizer_cls="Adam", **settings
                ),
                callbacks=[timer],
            )
        trainer.train()
    state = {}
    for key, value in trainer.model.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        state[f"{NAMES[prefix]}.{leaf}"] = value
    torch.save(state, work / f"weights-{case}.pt")
    return {"epoch_s": timer.times, "loads": timer.loads}


def evaluate(case: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The same scores for every case: importance-weighted NLL and -ELBO on the test set."""
    B.ensure_torchvae_importable()
    from torchvae.objectives.importance import log_likelihood

    model = _model(case.removeprefix("pythae-"))
    model.load_state_dict(torch.load(work / f"weights-{case}.pt", map_location="cpu"))
    model.eval()
    x = B.load_float(work, train=False)
    t = time.perf_counter()
    g = torch.Generator().manual_seed(args.seed + 1)
    nll = -float(log_likelihood(model, x, k=args.nll_k, generator=g).double().mean())
    with torch.no_grad():
        torch.manual_seed(args.seed + 2)
        elbo = 0.0
        for xb in x.split(1000):
            out = model(xb)
            elbo += float((out.log_px_z - out.kl).sum())
    return {"nll": nll, "neg_elbo": -elbo / len(x), "eval_s": time.perf_counter() - t}


def child_main(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    work = Path(args.work)
    load_before = _load()
    if args.phase == "eval":
        result = evaluate(args.child, args, work)
    elif args.child.startswith("pythae-"):
        result = train_pythae(args.child, args, work)
    else:  # torchvae cases are scored in the same process, after training
        result = train_torchvae(args.child, args, work)
        result.update(evaluate(args.child, args, work))
    result["load_start"] = load_before
    result["load_end"] = _load()
    B.write_result(args.result_file, result)


def run_child(python: str, case: str, phase: str, args: argparse.Namespace, work: Path) -> Any:
    """One case's phase in a fresh process: its result, or the reason it failed."""
    result = work / f"result-{phase}-{case}.json"
    result.unlink(missing_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--child", case, "--phase", phase]
    cmd += ["--work", str(work), "--result-file", str(result)]
    for name in ("epochs", "threads", "seed", "batch_size", "k", "m", "beta", "nll_k"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    cmd += ["--floor-steps", str(args.floor_steps)] + (["--gemm-floor"] if args.gemm_floor else [])
    cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=B.child_env(args.threads))
    if proc.returncode != 0 or not result.exists():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"exit {proc.returncode}: {' / '.join(lines[-3:])}"
    return json.loads(result.read_text())


def report(results: dict[str, dict[str, Any]], skipped: dict[str, str]) -> None:
    rows = []
    floor = any("gemm_s" in r for r in results.values())
    for case, r in results.items():
        times = r["epoch_s"][1:] or r["epoch_s"]
        s = B.median(times)
        twin = results.get(f"pythae-{case}")
        twin_s = B.median(twin["epoch_s"][1:] or twin["epoch_s"]) if twin else None
        speed = B.fmt(twin_s / s) if twin_s else "-"
        delta = B.fmt(r["nll"] - twin["nll"], "+.2f") if twin else "-"
        loads = r["loads"] + [r["load_start"]]
        spread, load = f"{min(times):.2f}-{max(times):.2f}", f"{min(loads):.1f}-{max(loads):.1f}"
        row = [case, B.fmt(s, ".2f"), spread, speed, B.fmt(r["nll"]), delta]
        row += [B.fmt(r["neg_elbo"]), load]
        if floor:
            gemm = r.get("gemm_s")
            row += [B.fmt(gemm, ".2f") if gemm else "-"]
            row += [B.fmt(twin_s / gemm) if twin_s and gemm else "-"]
        rows.append(row)
    headers = ["case", "s/epoch", "(min-max)", "pythae s / torchvae s", "NLL (nats)"]
    headers += ["NLL - pythae's", "test -ELBO", "load avg"]
    if floor:
        headers += ["GEMM s/epoch", "pythae s / GEMM s"]
    B.print_table(headers, rows)
    for case, why in skipped.items():
        print(f"skipped {case}: {why}")
    tv = {c: r for c, r in results.items() if not c.startswith("pythae-")}
    if "vae" in tv and len(tv) > 1:
        best = min(tv, key=lambda c: tv[c]["nll"])
        print(
            f"best torchvae model: {best}, NLL {tv[best]['nll']:.2f}: "
            f"{tv['vae']['nll'] - tv[best]['nll']:.2f} nats below this run's VAE "
            f"({tv['vae']['nll']:.2f}), {241.4 - tv[best]['nll']:.2f} below 241.4"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 epoch on 512 images, NLL k=10 on 100")  # fmt: skip
    p.add_argument("--cases", default=None, help="comma-separated (default: all)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--epochs", type=int, default=None, help="10 (quick: 1)")
    p.add_argument("--k", type=int, default=5, help="importance samples K (5)")
    p.add_argument("--m", type=int, default=2, help="MIWAE/PIWAE's M (2)")
    p.add_argument("--beta", type=float, default=0.5, help="CIWAE's beta (0.5)")
    p.add_argument("--nll-k", type=int, default=None, help="NLL samples (1000; quick 10)")
    p.add_argument("--n-test", type=int, default=None, help="test images (10000; quick 100)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pythae-python", default=None)
    p.add_argument("--skip-pythae", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--gemm-floor", action="store_true",
                   help="also profile each torchvae case's matrix products")  # fmt: skip
    p.add_argument("--floor-steps", type=int, default=40, help="steps profiled (40)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="train here (both libraries; scoring stays on the CPU)")  # fmt: skip
    for hidden in ("--child", "--phase", "--work", "--result-file"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(ORDER))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here")
    if args.device == "cuda" and args.gemm_floor:
        p.error("--gemm-floor profiles CPU time: use it with --device cpu")
    args.epochs = args.epochs or (1 if args.quick else 10)
    args.nll_k = args.nll_k or (10 if args.quick else 1000)
    if args.child:
        child_main(args)
        return 0
    cases = ORDER if args.cases is None else args.cases.split(",")
    unknown = [c for c in cases if c not in ORDER]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; choose from {', '.join(ORDER)}")
    from bench_train import pythae_python

    skipped: dict[str, str] = {}
    py_pythae = None if args.skip_pythae else pythae_python(args.pythae_python)
    if py_pythae is None:
        for c in [c for c in cases if c in PYTHAE]:
            skipped[c] = "--skip-pythae" if args.skip_pythae else "pythae is not installed"
        cases = [c for c in cases if c not in PYTHAE]
    n_test = args.n_test or (100 if args.quick else None)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="torchvae-families-") as tmp:
        work = Path(tmp)
        name = B.prepare_data(
            args.data_dir, work, 512 if args.quick else None, n_test, args.seed, args.synthetic
        )
        print(
            f"data: {name}; {args.epochs} epoch(s), batch {args.batch_size}, K={args.k}, "
            f"M={args.m}, beta={args.beta}; NLL with k={args.nll_k}; torch {torch.__version__}, "
            f"{args.threads} threads; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, load {_load():.1f}; training on {args.device}",
            flush=True,
        )
        for case in cases:
            python = py_pythae if case in PYTHAE else sys.executable
            assert python is not None
            trained = run_child(python, case, "train", args, work)
            scored = trained
            if case in PYTHAE and not isinstance(trained, str):
                scored = run_child(sys.executable, case, "eval", args, work)
            if isinstance(scored, str):
                skipped[case] = f"failed: {scored}"
                print(f"{case}: {skipped[case]}", flush=True)
                continue
            results[case] = {**trained, **scored}
            r = results[case]
            print(
                f"{case}: {B.median(r['epoch_s'][1:] or r['epoch_s']):.2f} s/epoch, "
                f"NLL {r['nll']:.2f}, -ELBO {r['neg_elbo']:.2f}, load {r['load_end']:.1f}",
                flush=True,
            )
    print()
    report(results, skipped)
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "skipped": skipped}, indent=1))
    failed = any(why.startswith("failed") for why in skipped.values())
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
