r"""The ``torchvae`` command: ``train``, ``sample`` and ``eval`` from the shell.

``torchvae train`` fits a VAE on MNIST or Fashion-MNIST with the
:class:`~torchvae.trainer.Trainer` and writes, under ``--out-dir``: ``config.json`` (the
run's settings and model config), ``checkpoints/`` (resumable), ``tensorboard/`` (logs),
``model.pt`` (:func:`~torchvae.serialization.save_model`'s safe format) and
``samples.png``; a run holds its ``--out-dir`` (an advisory lock) from start to end, so a
second run into the same folder fails at once, naming the first one's process id.
``torchvae sample`` and ``torchvae eval`` read either ``model.pt`` or a training
checkpoint; what they need to know of the run (data set, image shape, binarization,
settings) travels inside that file (``model.pt``'s metadata, the checkpoint's run info),
never read from another file beside it. Errors print one line to stderr and exit with
status 1 (2 for bad arguments); ``--debug`` shows the traceback instead.

Example:
    >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
    2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._distributed import rank_device
from ._io import atomic_write, check_file, remove_stray_temps
from ._lock import hold_folder
from .callbacks import BetaSchedule, Callback, ModelCheckpoint, ProgressBar, TensorBoardLogger
from .checkpoint import CheckpointError, find_last_checkpoint, load_checkpoint
from .conditional import ConditionalVAE
from .data import Binarize, DatasetNotFoundError, TensorLoader, load_dataset, mnist_loaders
from .decoders import ConvDecoder, Decoder
from .diagnostics import PosteriorCollapseWarning, latent_report, warn_if_collapsed
from .encoders import ConvEncoder, Encoder
from .importance import bits_per_dim, log_likelihood
from .likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from .losses import ELBOLoss
from .model import VAE
from .posteriors import DiagonalGaussian, FlowPosterior
from .priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior
from .schedules import Linear
from .serialization import (
    SerializationError,
    load_model,
    model_config,
    model_from_config,
    read_metadata,
)
from .serialization import save_model as _save_model
from .trainer import Trainer, _default_optimizer

__all__ = ["build_parser", "main"]

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
}

TRAIN_EPILOG = """examples:
  torchvae train --download                      # MNIST, the textbook's 784-400-200 VAE
  torchvae train --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist
  torchvae train --model conv --latent-dim 16 --warmup-epochs 5 --out-dir runs/conv
  torchvae train --resume last --out-dir runs/conv --epochs 20   # continue to 20 epochs
  torchvae train --epochs 1 --max-batches 20                     # a quick smoke run
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
    _setting(train, "--dataset", "data set", choices=["mnist", "fashion-mnist"])
    data(train)
    _setting(train, "--model", "encoder/decoder family", choices=["mlp", "conv"])
    _setting(train, "--hidden-dim", "MLP hidden size, or sizes as a comma list", type=_sizes)
    _setting(train, "--channels", "conv channels, comma list", type=_listify)
    _setting(train, "--latent-dim", "dimension of z", type=_pos_int)
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
        choices=["bernoulli", "continuous-bernoulli", "gaussian"],
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
    train.add_argument("--out-dir", type=Path, help="output folder (default: runs/DATASET-TIME)")
    train.add_argument(
        "--resume", help="'last' (in --out-dir) or a checkpoint file or folder to continue"
    )
    _setting(train, "--seed", "random seed", type=_seed)
    train.add_argument("--max-batches", type=_pos_int, help="limit batches per epoch (smoke runs)")
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
    ev.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="default: the run's")
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
    return parser


# --- models, losses, run files --------------------------------------------------------------


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available here (use --device cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise CLIError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available here (use --device cpu)")
    return device


def _parts(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The likelihood, prior and posterior that ``settings`` name."""
    k, name = settings.get("prior_components"), settings.get("prior", "standard")
    prior: Prior = StandardNormal()
    if name == "mixture":
        prior = MixturePrior(k or 10)
    elif name == "vamp":
        prior = VampPrior(k or 500)
    elif name == "flow":
        prior = FlowPrior()
    posterior = FlowPosterior() if settings.get("posterior") == "flow" else DiagonalGaussian()
    return {
        "likelihood": _likelihood(settings["likelihood"]),
        "prior": prior,
        "posterior": posterior,
    }


def _build_model(settings: Mapping[str, Any], image_shape: Sequence[int]) -> nn.Module:
    """The VAE (or conditional VAE) that ``settings`` (see ``DEFAULTS``) describe."""
    shape = tuple(image_shape)
    dim, latent = math.prod(shape), settings["latent_dim"]
    parts = _parts(settings)
    if settings["model"] == "conv":
        channels = tuple(settings["channels"])
        if settings["conditional"]:
            return ConditionalVAE.conv(latent, NUM_CLASSES, shape, channels, **parts)
        return VAE(
            ConvEncoder(latent, shape, channels),
            ConvDecoder(latent, shape, channels[::-1]),
            **parts,
        )
    hidden = settings["hidden_dim"]
    if settings["conditional"]:
        return ConditionalVAE.mlp(dim, hidden, latent, NUM_CLASSES, **parts)
    return VAE(Encoder(dim, hidden, latent), Decoder(latent, hidden, dim), **parts)


def _likelihood(name: str) -> Likelihood:
    if name == "gaussian":
        return Gaussian(scale=0.1, learn_scale=True)
    return ContinuousBernoulli() if name == "continuous-bernoulli" else Bernoulli()


class _RunInfo(Callback):
    """Stores the run's settings and model config (JSON) inside every checkpoint."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = dict(run)

    def state_dict(self) -> dict[str, Any]:
        return {"run": json.dumps(self.run)}


def _write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())


def _run_of_checkpoint(state: Mapping[str, Any]) -> dict[str, Any] | None:
    for entry in state.get("callbacks", {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("run"), str):
            run: dict[str, Any] = json.loads(entry["run"])
            return run
    return None


def _find_checkpoint(path: Path) -> Path:
    """A file as given; in a folder, its model.pt or its newest checkpoint."""
    if not path.is_dir():
        try:
            return check_file(path, "checkpoint")
        except OSError as e:  # names a missing file, a dangling link, a loop of links
            raise CLIError(str(e)) from None
    if (path / "model.pt").is_file():
        return path / "model.pt"
    found = find_last_checkpoint(path) or find_last_checkpoint(path / "checkpoints")
    if found is None:
        raise CLIError(f"{path} holds no model.pt and no epoch-*.pt checkpoint")
    return found


def _run_of_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The run info (as in checkpoints) that ``torchvae train`` put in a model's metadata."""
    settings = metadata.get("settings")
    if not isinstance(settings, dict):
        return {}
    run: dict[str, Any] = {"settings": {**DEFAULTS, **settings}}
    if "image_shape" in metadata:
        run["image_shape"] = metadata["image_shape"]
    return run


def _load(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model on the CPU, run info or {})`` from a model file or a checkpoint.

    The run info comes from the file itself: a model file's metadata, a checkpoint's
    run settings; never from a ``config.json`` beside it, which may be another run's.
    """
    path = _find_checkpoint(path)
    try:
        model = load_model(path, map_location="cpu")
    except SerializationError as model_error:
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            if e.recognized:  # a checkpoint, damaged: its own message names a good one
                raise CLIError(str(e)) from e
            hint = (
                ""
                if e.last_good is None
                else f"; the newest good checkpoint beside it is {e.last_good}"
            )
            raise CLIError(
                f"{path} is neither a torchvae model file nor a training checkpoint: "
                f"{model_error}{hint}"
            ) from model_error
        except Exception:
            raise CLIError(
                f"{path} is neither a torchvae model file nor a training checkpoint: {model_error}"
            ) from model_error
        run = _run_of_checkpoint(state)
        if run is None:
            raise CLIError(
                f"{path} is a training checkpoint without the model's config (not written by "
                f"'torchvae train'); save the model with torchvae.serialization.save_model"
            ) from None
        model = model_from_config(_with_likelihood(run))
        model.load_state_dict(_legacy_state(state))
        return model, run
    try:
        metadata = read_metadata(path)
    except SerializationError as e:  # pragma: no cover (load_model read it a moment ago)
        raise CLIError(str(e)) from e
    return model, _run_of_metadata(metadata)


def _with_likelihood(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's model config; runs from before the model held its likelihood name it in
    their settings (the loss held it then)."""
    config = dict(run["model"])
    if "likelihood" not in config:
        likelihood = _likelihood(run.get("settings", DEFAULTS)["likelihood"])
        config["likelihood"] = {"type": type(likelihood).__name__, **likelihood.config()}
    return config


def _legacy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The model's weights, with a learned likelihood scale the loss held before it moved
    into the model."""
    weights = dict(state["model"])
    for key, value in state.get("loss", {}).items():
        if key.startswith("likelihood.") and key not in weights:
            weights[key] = value
    return weights


def _image_shape(model: nn.Module, run: Mapping[str, Any]) -> tuple[int, ...]:
    if "image_shape" in run:
        return tuple(run["image_shape"])
    shape = tuple(getattr(model.decoder, "output_shape", ()))
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) == 1 and side * side == shape[0]:
        return (1, side, side)
    if len(shape) == 3:
        return shape
    raise CLIError(f"cannot tell the image shape of a decoder with output shape {shape}")


@torch.no_grad()
def _draw(model: Any, n: int, labels: Tensor | None, seed: int, t: float) -> Tensor:
    """``n`` images: the mean of ``p(x|z)`` for ``z ~ p(z)`` at temperature ``t``, clamped to
    the likelihood's data range for the picture."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    y = None if labels is None else labels.to(device)
    images: Tensor = model.sample(n, generator=gen, temperature=t, y=y)
    low, high = getattr(model.likelihood, "data_range", None) or (0.0, 1.0)
    return ((images.float() - low) / (high - low)).clamp(0, 1).cpu()


def _save_grid(images: Tensor, shape: Sequence[int], path: Path, nrow: int) -> None:
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.reshape(-1, *shape), str(path), nrow=nrow, padding=2, pad_value=1.0)


# --- commands --------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, saved: Mapping[str, Any] | None) -> dict[str, Any]:
    # Runs from before a setting existed had its default.
    settings = dict(DEFAULTS, **(saved or {}))
    for key in DEFAULTS:
        given = getattr(args, key)
        if given is None:
            continue
        if saved is not None and given != settings[key]:
            flag = "--" + key.replace("_", "-")
            raise CLIError(
                f"{flag} {given} differs from the resumed run's {settings[key]}; a resumed run "
                f"keeps its settings (omit {flag}, or start a new run in another --out-dir)"
            )
        settings[key] = given
    return settings


_RUN_FILES = re.compile(r"model\.pt|config\.json")


class _Hold:
    """Holds the run folder (rank 0 only) from the first moment it exists to the end."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack, self.held = stack, False
        self.lead = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 writes

    def __call__(self, folder: Path, create: bool) -> None:
        if self.held or not self.lead or not (create or folder.is_dir()):
            return
        self.stack.enter_context(hold_folder(folder, "--out-dir"))
        self.held = True
        remove_stray_temps(folder, _RUN_FILES)  # left by a run killed while writing


def _train(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        _train_holding(args, _Hold(stack))


def _train_holding(args: argparse.Namespace, hold: _Hold) -> None:
    saved, resume, out_dir = None, None, args.out_dir
    if args.resume is not None and args.resume != "last":
        resume = _find_checkpoint(Path(args.resume))
        if out_dir is None:
            in_ckpts = resume.parent.name == "checkpoints"
            out_dir = resume.parent.parent if in_ckpts else resume.parent
    if out_dir is not None:
        hold(out_dir, create=False)  # before reading what another run may be writing
    if args.resume is not None:
        if args.resume == "last":
            if out_dir is None:
                raise CLIError("--resume last needs --out-dir, the folder of the run to continue")
            resume = find_last_checkpoint(out_dir / "checkpoints")
            if resume is None:
                raise CLIError(f"--resume last: no checkpoint in {out_dir / 'checkpoints'}")
        assert resume is not None
        saved_run = _run_of_checkpoint(load_checkpoint(resume))
        if saved_run is None:
            raise CLIError(f"{resume} was not written by 'torchvae train': cannot resume it")
        saved = saved_run["settings"]
    settings = _settings(args, saved)
    if out_dir is None:
        out_dir = Path("runs") / f"{settings['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}"
    args.out_dir = out_dir  # for the hint on interruption
    ckpt_dir, tb_dir = out_dir / "checkpoints", out_dir / "tensorboard"
    if resume is None and find_last_checkpoint(ckpt_dir) is not None:
        raise CLIError(
            f"{out_dir} already holds a run; continue it with --resume last --out-dir "
            f"{out_dir}, or choose another --out-dir"
        )
    device = _resolve_device(args.device)
    train, test = mnist_loaders(
        root=args.data_dir,
        dataset=settings["dataset"],
        batch_size=settings["batch_size"],
        flatten=settings["model"] == "mlp",
        binarize=settings["binarize"],
        seed=settings["seed"],
        download=args.download,
        device=rank_device(device),  # under torchrun, this process's GPU
        max_batches=args.max_batches,
    )
    hold(out_dir, create=True)  # the data is there: the run starts writing
    image_shape = [1, *train.images.shape[1:]]
    torch.manual_seed(settings["seed"])  # the initial weights, too, follow --seed
    model = _build_model(settings, image_shape)
    loss = ELBOLoss(beta=settings["beta"], free_bits=settings["free_bits"])
    model.to(rank_device(device))  # so that the optimizer is made for the right device
    loss.to(rank_device(device))
    params = [*model.parameters(), *loss.parameters()]
    run: dict[str, Any] = {
        "settings": settings,
        "image_shape": image_shape,
        "model": model_config(model),
    }
    callbacks: list[Callback] = [_RunInfo(run), ProgressBar()]
    if settings["warmup_epochs"] > 0:
        steps = settings["warmup_epochs"] * len(train)
        callbacks.append(BetaSchedule(Linear(steps=steps, end=settings["beta"])))
    callbacks += [
        TensorBoardLogger(tb_dir, seed=settings["seed"], hparams=settings),
        ModelCheckpoint(ckpt_dir, keep_last=3),
    ]
    trainer = Trainer(
        model,
        loss,
        _default_optimizer(params, lr=settings["lr"]),
        callbacks=callbacks,
        device=device,
        seed=settings["seed"],
        batch_size=settings["batch_size"],
    )
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / "config.json", run)
        what = "resuming " + str(resume) if resume else f"training on {settings['dataset']}"
        print(f"{what} ({trainer.device}); {run['model']['type']} latent {settings['latent_dim']}")
    trainer.fit(train, test, epochs=args.epochs, resume=resume)
    if not trainer.is_global_zero:
        return

    model_path, samples_path = out_dir / "model.pt", out_dir / "samples.png"
    _save_grid_for(trainer.model, settings, image_shape, samples_path)
    metadata: dict[str, Any] = {
        "dataset": settings["dataset"],
        "image_shape": image_shape,
        "binarize": settings["binarize"],
        "seed": settings["seed"],
        "epochs": trainer.epoch,
        "settings": settings,
    }
    _save_model(trainer.model, model_path, metadata=metadata)
    last = trainer.history[-1] if trainer.history else {}
    if "val_loss" in last:
        print(
            f"test -ELBO {last['val_loss']:.2f} nats ({last['val_bits_per_dim']:.4f} bits/dim) "
            f"after {trainer.epoch} epochs"
        )
    print(
        f"wrote model {model_path}, samples {samples_path}, checkpoints {ckpt_dir}/, "
        f"TensorBoard logs {tb_dir}/ (view with: tensorboard --logdir {tb_dir})"
    )


def _save_grid_for(
    model: nn.Module, settings: Mapping[str, Any], shape: Sequence[int], path: Path
) -> None:
    labels = torch.arange(100) % NUM_CLASSES if settings["conditional"] else None
    n, nrow = (100, NUM_CLASSES) if labels is not None else (64, 8)
    _save_grid(_draw(model, n, labels, settings["seed"], 1.0), shape, path, nrow)


def _check_image_path(path: Path) -> None:
    if path.is_dir():
        raise CLIError(
            f"--out {path} is a folder: give the image file to write, e.g. "
            f"--out {path / 'samples.png'}"
        )
    from PIL import Image

    known = Image.registered_extensions()
    if path.suffix.lower() not in known:
        what = f"its extension {path.suffix!r}" if path.suffix else "it has no extension, which"
        raise CLIError(
            f"--out {path}: {what} names no image format; end the name in .png (or .jpg, .bmp, ...)"
        )


def _sample(args: argparse.Namespace) -> None:
    _check_image_path(args.out)  # before the work
    model, run = _load(args.checkpoint)
    model.to(_resolve_device(args.device))
    conditional = bool(getattr(model, "is_conditional", False))
    if args.label is not None and not conditional:
        raise CLIError("--label needs a conditional model (trained with --conditional)")
    labels = None
    if conditional:
        num_classes = int(getattr(model, "num_classes", NUM_CLASSES))
        if args.label is not None and args.label >= num_classes:
            raise CLIError(f"--label must be in [0, {num_classes}), got {args.label}")
        labels = (
            torch.full((args.n,), args.label)
            if args.label is not None
            else torch.arange(args.n) % num_classes
        )
    nrow = args.nrow or (num_classes if conditional and args.label is None else 8)
    images = _draw(model, args.n, labels, args.seed, args.temperature)
    _save_grid(images, _image_shape(model, run), args.out, nrow)
    print(f"wrote {args.n} samples to {args.out}")


def _eval(args: argparse.Namespace) -> None:
    model, run = _load(args.checkpoint)
    device = _resolve_device(args.device)
    model.to(device).eval()
    settings = run.get("settings", DEFAULTS)
    if args.dataset is None and "settings" not in run:
        raise CLIError(
            f"{args.checkpoint} does not say which data set the model was trained on (it "
            f"was saved without torchvae train's metadata); pass --dataset mnist or "
            f"--dataset fashion-mnist"
        )
    dataset = args.dataset or settings["dataset"]
    images, targets = load_dataset(dataset, args.data_dir, train=False, download=args.download)
    binarize: Binarize = "none" if settings["binarize"] == "none" else "static"
    full = TensorLoader(images, targets, 1, seed=settings["seed"], binarize=binarize)
    n = min(args.max_examples or full.dataset_size, full.dataset_size)
    data = TensorLoader(full.images[:n], targets[:n], args.batch_size, device=device)
    torch.manual_seed(args.seed)
    # the plain ELBO (beta 1, no free bits) with the model's own likelihood and prior
    elbo = Trainer(model, ELBOLoss(), device=device).evaluate(data)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    conditional = bool(getattr(model, "is_conditional", False))
    total, dims = 0.0, 1
    for x, y in data:
        extra = {"y": y} if conditional else {}
        ll = log_likelihood(model, x, args.k, None, args.chunk_size, gen, **extra)
        total, dims = total - float(ll.sum()), x[0].numel()
    nll = total / n
    report = latent_report(model, data, generator=gen)
    kl = report.kl_per_dim
    result = {
        "checkpoint": str(args.checkpoint),
        "dataset": dataset,
        "n_examples": n,
        "neg_elbo": elbo["loss"],
        "reconstruction": elbo["reconstruction"],
        "kl": elbo["kl"],
        "elbo_bits_per_dim": elbo["bits_per_dim"],
        "k": args.k,
        "nll": nll,
        "bits_per_dim": float(bits_per_dim(nll, dims)),
        "active_units": report.active_units,
        "latent_dim": report.latent_dim,
        "mutual_information": report.mutual_information,
        "marginal_kl": report.marginal_kl,
        "kl_per_dim": None if kl is None else [float(v) for v in kl],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.checkpoint} on the {dataset} test set ({n} examples), nats per example:")
    print(f"  -ELBO            {elbo['loss']:10.3f}   ({elbo['bits_per_dim']:.4f} bits/dim)")
    print(f"  reconstruction   {elbo['reconstruction']:10.3f}")
    print(f"  KL               {elbo['kl']:10.3f}")
    print(f"  NLL (IWAE)       {nll:10.3f}   ({result['bits_per_dim']:.4f} bits/dim, k={args.k})")
    print(f"  active units     {report.active_units:6d} / {report.latent_dim}")
    print(f"  I(x;z)           {report.mutual_information:10.3f}")
    print(f"  KL(q(z)||p(z))   {report.marginal_kl:10.3f}")
    if kl is not None:
        print(
            f"  KL per dim       min {float(kl.min()):.3f}  median {float(kl.median()):.3f}  "
            f"max {float(kl.max()):.3f}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        collapsed = warn_if_collapsed(report)  # the rule, without the Python warning
    if collapsed:
        print(
            f"  warning: posterior collapse, {report.active_units} of {report.latent_dim} "
            f"dimensions active, I(x;z) ~ {report.mutual_information:.3g} nats (try "
            f"--warmup-epochs, --free-bits or a smaller --beta)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchvae`` command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an error (reported in one line on stderr),
        130 when interrupted. Bad arguments exit with status 2 through ``argparse``.
    """
    args = build_parser().parse_args(argv)
    run = {"train": _train, "sample": _sample, "eval": _eval}[args.command]
    try:
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = ""
        if args.command == "train" and args.out_dir is not None:
            hint = f"; continue with: torchvae train --resume last --out-dir {args.out_dir}"
        print(f"torchvae: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        known = isinstance(e, (CLIError, OSError, ValueError, TypeError, RuntimeError))
        message = str(e) if known and str(e) else f"{type(e).__name__}: {e} (--debug shows where)"
        if not isinstance(e, DatasetNotFoundError):  # whose message lists where it looked
            message = message.strip().splitlines()[0] if message.strip() else type(e).__name__
        else:
            message += (
                "\nOn the command line: --download fetches them, --data-dir FOLDER finds them."
            )
        print(f"torchvae: error: {message}", file=sys.stderr)
        return 1
    return 0
