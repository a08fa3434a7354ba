"""The command line's arguments: the parser, the run settings and their defaults."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DATASETS",
    "DEFAULTS",
    "EVAL_EPILOG",
    "NUM_CLASSES",
    "SAMPLE_EPILOG",
    "TRAIN_EPILOG",
    "CLIError",
    "build_parser",
    "check_dataset",
    "parse_param",
]


NUM_CLASSES = 10  # MNIST and Fashion-MNIST
# The run's settings and their defaults (the textbook's: 784-400-200, batch 100, Adam 1e-3).
# On --resume the saved ones are used; giving a different value is an error.
DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "model": "mlp",
    "hidden_dim": 400,
    "channels": [32, 64],
    "latent_dim": 200,
    "batch_size": 100,
    "lr": 1e-3,
    "beta": 1.0,
    "warmup_epochs": 0,
    "free_bits": 0.0,
    "likelihood": "bernoulli",
    "prior": "standard",
    "prior_components": None,
    "posterior": "gaussian",
    "binarize": "none",
    "conditional": False,
    "seed": 0,
    # model families, objectives and data beyond the textbook's (defaults: as before)
    "objective": "elbo",
    "objective_params": {},
    "latent_dims": None,
    "blocks": 2,
    "codebook_size": 128,
    "code_prior_epochs": 5,
    "dequantize": False,
    "fit_sampler": "none",
    "sampler_components": 10,
}

TRAIN_EPILOG = """examples:
  torchvae train --download                      # MNIST, the textbook's 784-400-200 VAE
  torchvae train --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist
  torchvae train --model conv --latent-dim 16 --warmup-epochs 5 --out-dir runs/conv
  torchvae train --resume last --out-dir runs/conv --epochs 20   # continue to 20 epochs
  torchvae train --epochs 1 --max-batches 20                     # a quick smoke run
  torchvae train --config run.yaml --lr 3e-4                     # a file, one flag changed
  torchvae train --config runs/conv/config.json --out-dir runs/again  # repeat a run
"""
SAMPLE_EPILOG = """examples:
  torchvae sample --checkpoint runs/vae/model.pt --n 64 --out samples.png
  torchvae sample --checkpoint runs/cvae/checkpoints/best.pt --label 3 --temperature 0.8
"""
EVAL_EPILOG = """examples:
  torchvae eval --checkpoint runs/vae/model.pt --max-examples 1000 --k 1000
  torchvae eval --checkpoint runs/vae --json > results.json
"""


class CLIError(Exception):
    """A problem to report to the user in one line, without a traceback."""


def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_pos_int = _number(int, lambda v: v >= 1, "an integer >= 1")
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_pos_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_nonneg_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
_seed = _number(int, lambda v: 0 <= v < 2**63, "an integer from 0 to 2**63 - 1")
# Bounds where a larger value can only be a typo (and would run for ever).
_epochs = _number(int, lambda v: 1 <= v <= 10**6, "an integer from 1 to 1000000")
_warmup = _number(int, lambda v: 0 <= v <= 10**6, "an integer from 0 to 1000000")
_threads = _number(int, lambda v: 1 <= v <= 1024, "an integer from 1 to 1024")


def _sizes(text: str) -> int | list[int]:
    """``"400"`` -> 400 (the textbook's two layers); ``"512,256"`` -> one layer each."""
    parts = [_pos_int(p.strip()) for p in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def _listify(text: str) -> list[int]:
    value = _sizes(text)
    return [value] if isinstance(value, int) else value


DATASETS = ("mnist", "fashion-mnist", "cifar10", "sprites")


def check_dataset(text: str) -> str:
    """``--dataset``: a built-in name, ``folder:PATH`` or ``file:PATH``."""
    if text in DATASETS or text.startswith(("folder:", "file:")):
        return text
    raise ValueError(
        f"unknown data set {text!r}: one of {', '.join(DATASETS)}, folder:PATH (a folder of "
        f"images) or file:PATH (.npy, .npz or .pt)"
    )


def parse_param(text: str) -> tuple[str, Any]:
    """``--objective-param KEY=VALUE``; the value is read as JSON (a number, true, a list)
    when it parses as JSON, else kept as text."""
    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise ValueError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of ints, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return values


def _dataset(text: str) -> str:
    try:
        return check_dataset(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _param(text: str) -> tuple[str, Any]:
    try:
        return parse_param(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _device(text: str) -> str:
    try:
        ok = text == "auto" or torch.device(text).type in ("cpu", "cuda", "mps")
    except RuntimeError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {text!r}"
        )
    return text


def _setting(p: argparse.ArgumentParser, flag: str, help: str, **kw: Any) -> None:
    """A run setting: its default lives in DEFAULTS so that explicit values are known."""
    default = DEFAULTS[flag.lstrip("-").replace("-", "_")]
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    p.add_argument(flag, default=None, help=f"{help} (default: {shown})", **kw)


def build_parser() -> argparse.ArgumentParser:
    """The ``torchvae`` argument parser, with the ``train``, ``sample`` and ``eval`` commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="torchvae",
        description="Variational autoencoders for PyTorch: train, sample, evaluate.",
        epilog="run 'torchvae COMMAND --help' for each command's options and examples",
        formatter_class=fmt,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
        p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, mps")
        p.add_argument("--num-threads", type=_threads, help="CPU threads for torch")

    def data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="folder with the four IDX files (.gz or not)")
        p.add_argument("--download", action="store_true", help="download the data if absent")

    train = commands.add_parser(
        "train", help="train a VAE", epilog=TRAIN_EPILOG, formatter_class=fmt
    )
    _setting(
        train,
        "--dataset",
        "mnist, fashion-mnist, cifar10, sprites, folder:PATH or file:PATH",
        type=_dataset,
        metavar="DATA",
    )
    data(train)
    _setting(
        train,
        "--model",
        "model family",
        choices=["mlp", "conv", "resnet", "hierarchical", "vqvae"],
    )
    _setting(train, "--hidden-dim", "MLP hidden size, or sizes as a comma list", type=_sizes)
    _setting(train, "--channels", "conv channels, comma list", type=_listify)
    _setting(train, "--latent-dim", "dimension of z", type=_pos_int)
    _setting(
        train,
        "--latent-dims",
        "hierarchical: each stochastic layer's size, bottom first (100,50: Burda et al.'s)",
        type=_int_list,
    )
    _setting(train, "--blocks", "resnet: residual blocks per stage", type=_pos_int)
    _setting(train, "--codebook-size", "vqvae: codes in the codebook", type=_pos_int)
    _setting(
        train,
        "--code-prior-epochs",
        "vqvae: epochs of the PixelCNN prior over codes, fitted after (0: none)",
        type=_nonneg_int,
    )
    _setting(
        train,
        "--objective",
        "training objective",
        choices=[
            "elbo", "iwae", "miwae", "piwae", "ciwae", "dreg", "capacity", "btcvae",
            "factorvae", "dip-i", "dip-ii", "infovae", "wae", "vq",
        ],
    )  # fmt: skip
    train.add_argument(
        "--objective-param",
        dest="objective_params",
        action="append",
        type=_param,
        metavar="KEY=VALUE",
        help="an argument of the objective's class, e.g. k=50 (iwae) or gamma=10 (factorvae); "
        "repeat for several",
    )
    train.add_argument("--epochs", type=_epochs, default=10, help="total epochs (default: 10)")
    _setting(train, "--batch-size", "training batch size", type=_pos_int)
    _setting(train, "--lr", "Adam learning rate", type=_pos_float)
    _setting(train, "--beta", "KL weight (beta-VAE)", type=_nonneg_float)
    _setting(train, "--warmup-epochs", "linear KL warm-up from 0 to beta", type=_warmup)
    _setting(train, "--free-bits", "free nats per latent dimension", type=_nonneg_float)
    _setting(
        train,
        "--likelihood",
        "p(x|z)",
        choices=[
            "bernoulli", "continuous-bernoulli", "gaussian", "discretized-logistic",
            "discretized-mixture",
        ],
    )  # fmt: skip
    _setting(
        train, "--dequantize", "uniformly dequantized 8-bit data, (x+u)/256", action="store_true"
    )
    _setting(train, "--prior", "p(z)", choices=["standard", "mixture", "vamp", "flow"])
    train.add_argument(
        "--prior-components",
        type=_pos_int,
        default=None,
        help="components of a mixture prior (default: 10) or pseudo-inputs of a VampPrior "
        "(default: 500)",
    )
    _setting(train, "--posterior", "q(z|x)", choices=["gaussian", "flow"])
    _setting(train, "--binarize", "binarize images", choices=["none", "dynamic", "static"])
    _setting(train, "--conditional", "condition on the class label", action="store_true")
    _setting(
        train,
        "--fit-sampler",
        "after training, fit an ex-post sampler to the aggregate posterior, saved with the model",
        choices=["none", "gmm"],
    )
    _setting(train, "--sampler-components", "components of the fitted mixture", type=_pos_int)
    train.add_argument("--out-dir", type=Path, help="output folder (default: runs/DATASET-TIME)")
    train.add_argument(
        "--resume", help="'last' (in --out-dir) or a checkpoint file or folder to continue"
    )
    _setting(train, "--seed", "random seed", type=_seed)
    train.add_argument("--max-batches", type=_pos_int, help="limit batches per epoch (smoke runs)")
    train.add_argument(
        "--config",
        type=Path,
        help="YAML, TOML or JSON file of these options (keys: their names with underscores, "
        "e.g. latent_dim); flags override it; a run's config.json repeats that run",
    )
    common(train)

    sample = commands.add_parser(
        "sample", help="draw samples into a PNG grid", epilog=SAMPLE_EPILOG, formatter_class=fmt
    )
    sample.add_argument(
        "--checkpoint", type=Path, required=True, help="model.pt, checkpoint or run folder"
    )
    sample.add_argument("--n", type=_pos_int, default=64, help="how many (default: 64)")
    sample.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG file")
    sample.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    sample.add_argument("--temperature", type=_nonneg_float, default=1.0, help="prior scale")
    sample.add_argument("--label", type=_nonneg_int, help="class to draw (conditional models)")
    sample.add_argument("--nrow", type=_pos_int, help="images per row of the grid")
    sample.add_argument(
        "--sampler",
        choices=["prior", "fitted"],
        default="prior",
        help="draw z from the prior, or from the sampler fitted by train --fit-sampler",
    )
    common(sample)

    ev = commands.add_parser(
        "eval",
        help="test-set -ELBO, IWAE NLL, bits/dim, latent diagnostics",
        epilog=EVAL_EPILOG,
        formatter_class=fmt,
    )
    ev.add_argument(
        "--checkpoint", type=Path, required=True, help="model.pt, checkpoint or run folder"
    )
    ev.add_argument("--dataset", type=_dataset, metavar="DATA", help="default: the run's")
    data(ev)
    ev.add_argument("--k", type=_pos_int, default=1000, help="importance samples (default: 1000)")
    ev.add_argument("--chunk-size", type=_pos_int, default=8192, help="decodes held at once")
    ev.add_argument("--batch-size", type=_pos_int, default=100, help="examples per batch")
    ev.add_argument(
        "--max-examples", type=_pos_int, help="first N test examples (default: all 10000)"
    )
    ev.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    common(ev)
    _sweep_parser(commands, train, fmt)
    return parser


SWEEP_EPILOG = """examples:
  torchvae sweep --grid beta=0.5,1,2 --grid seed=0,1 --out-dir runs/betas --latent-dim 20
  torchvae sweep --resume --out-dir runs/betas --epochs 20     # continue every member
  torchvae eval --checkpoint runs/betas/beta-2_seed-1          # one member, as a train run
"""


def _sweep_parser(commands: Any, train: argparse.ArgumentParser, fmt: Any) -> None:
    """``torchvae sweep``: the train flags, a grid over some of them, one stacked run."""
    sweep = commands.add_parser(
        "sweep",
        help="train a grid of VAEs at once, their weights stacked",
        epilog=SWEEP_EPILOG,
        formatter_class=fmt,
    )
    for action in train._actions:  # the train flags, but where the run goes
        if action.dest not in ("help", "resume", "out_dir"):
            sweep._add_action(action)
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="values of a setting, one member per point of the grid; KEY is seed, beta, lr, "
        "free-bits or warmup-epochs (repeat --grid for more keys)",
    )
    sweep.add_argument(
        "--out-dir", type=Path, required=True, help="the sweep's folder: one run folder per member"
    )
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in --out-dir")
