"""``torchvae train``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..callbacks import BetaSchedule, Callback, ModelCheckpoint, ProgressBar, TensorBoardLogger
from ..io._atomic import remove_stray_temps
from ..io._lock import hold_folder
from ..io.checkpoint import find_last_checkpoint, load_checkpoint
from ..io.serialization import (
    model_config,
)
from ..io.serialization import save_model as _save_model
from ..schedules import Linear
from ..training._distributed import rank_device
from ..training._optimizers import default_optimizer
from ..training.trainer import Trainer
from ._config import repeatable
from ._families import after_training, build_objective, load_loaders, main_parameters
from ._parser import DEFAULTS, CLIError
from ._runs import (
    RunInfo,
    build_model,
    find_checkpoint,
    resolve_device,
    run_of_checkpoint,
    save_grid_for,
    write_json,
)

__all__ = ["settings_of", "train_command"]


def settings_of(args: argparse.Namespace, saved: Mapping[str, Any] | None) -> dict[str, Any]:
    # Runs from before a setting existed had its default.
    settings = dict(DEFAULTS, **(saved or {}))
    if isinstance(getattr(args, "objective_params", None), list):  # KEY=VALUE pairs
        args.objective_params = dict(args.objective_params)
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


def _check_recorded(args: argparse.Namespace, run: Mapping[str, Any]) -> None:
    """A --config from a run's folder must build what that run built."""
    for key, value in getattr(args, "recorded", {}).items():
        if value != run[key]:
            raise CLIError(
                f"--config {args.config} records {key} {json.dumps(value)}, but these options "
                f"build {json.dumps(run[key])}; remove {key!r} from the file to build anew"
            )


def train_command(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        _train_holding(args, _Hold(stack))


def _train_holding(args: argparse.Namespace, hold: _Hold) -> None:
    saved, resume, out_dir = None, None, args.out_dir
    if args.resume is not None and args.resume != "last":
        resume = find_checkpoint(Path(args.resume))
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
        saved_run = run_of_checkpoint(load_checkpoint(resume))
        if saved_run is None:
            raise CLIError(f"{resume} was not written by 'torchvae train': cannot resume it")
        saved = saved_run["settings"]
    settings = settings_of(args, saved)
    if out_dir is None:
        out_dir = Path("runs") / f"{settings['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}"
    args.out_dir = out_dir  # for the hint on interruption
    ckpt_dir, tb_dir = out_dir / "checkpoints", out_dir / "tensorboard"
    if resume is None and find_last_checkpoint(ckpt_dir) is not None:
        raise CLIError(
            f"{out_dir} already holds a run; continue it with --resume last --out-dir "
            f"{out_dir}, or choose another --out-dir"
        )
    device = resolve_device(args.device)
    train, test, shape = load_loaders(
        settings,
        args.data_dir,
        download=args.download,
        device=rank_device(device),  # under torchrun, this process's GPU
        max_batches=args.max_batches,
    )
    hold(out_dir, create=True)  # the data is there: the run starts writing
    image_shape = list(shape)
    torch.manual_seed(settings["seed"])  # the initial weights, too, follow --seed
    model = build_model(settings, image_shape)
    loss = build_objective(settings, model, train.dataset_size)
    if settings["warmup_epochs"] > 0 and not hasattr(loss, "beta"):
        raise CLIError(
            f"--warmup-epochs warms up a beta; --objective {settings['objective']} has none"
        )
    model.to(rank_device(device))  # so that the optimizer is made for the right device
    loss.to(rank_device(device))
    params = main_parameters(model, loss)
    run: dict[str, Any] = {
        "settings": settings,
        "image_shape": image_shape,
        "model": model_config(model),
    }
    _check_recorded(args, run)
    callbacks: list[Callback] = [RunInfo(run), ProgressBar()]
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
        default_optimizer(params, lr=settings["lr"]),
        callbacks=callbacks,
        device=device,
        seed=settings["seed"],
        batch_size=settings["batch_size"],
    )
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "config.json", {**run, **repeatable(args)})  # a valid --config
        what = "resuming " + str(resume) if resume else f"training on {settings['dataset']}"
        print(f"{what} ({trainer.device}); {run['model']['type']} latent {settings['latent_dim']}")
    trainer.fit(train, test, epochs=args.epochs, resume=resume)
    if not trainer.is_global_zero:
        return

    model_path, samples_path = out_dir / "model.pt", out_dir / "samples.png"
    after_training(trainer.model, settings, train, test, device)
    if getattr(trainer.model, "can_sample", True):
        save_grid_for(trainer.model, settings, image_shape, samples_path)
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
