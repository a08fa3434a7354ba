"""A sweep member's files: its checkpoints (in the Trainer's format), their restoration,
its TensorBoard run, and its early stopping."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..io.checkpoint import find_last_checkpoint, get_rng_state, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from .sweep import Sweep

__all__ = [
    "Stopper",
    "log_step",
    "member_checkpoint",
    "resume_members",
    "write_checkpoint",
    "write_hparams",
]


class Stopper:
    """Early stopping of one member (as :class:`~torchvae.callbacks.EarlyStopping`)."""

    def __init__(self, patience: int | None, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.wait, self.stopped_epoch = 0, 0

    def update(self, value: float, epoch: int) -> bool:
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch
        return self.stopped_epoch > 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.wait, self.stopped_epoch = (
            state["best"],
            state["wait"],
            state["stopped_epoch"],
        )


def member_checkpoint(sweep: Sweep, i: int) -> dict[str, Any]:
    """Member ``i``'s checkpoint: what a :class:`~torchvae.Trainer` checkpoint holds."""
    model = sweep.model(i)
    params = list(model.parameters())
    optimizer = sweep.adam.member_state(i, params)
    rng = get_rng_state()
    rng["torch"] = sweep.gens[i].get_state()
    if sweep.dev_gens is not sweep.gens:
        rng["cuda"] = [sweep.dev_gens[i].get_state()]
    info = sweep.members[i].info
    callbacks: dict[str, Any] = {
        "SweepMember": {
            "member": json.dumps({**asdict(sweep.members[i]), "folder": None, "info": None}),
            "stopper": sweep.stoppers[i].state_dict(),
        }
    }
    if info is not None:
        callbacks["RunInfo"] = {"run": json.dumps(dict(info))}
    return {
        "model": model.state_dict(),
        "loss": {},
        "optimizer": optimizer,
        "aux_optimizers": {},
        "scheduler": None,
        "scaler": {},
        "optimizer_type": "Adam",
        "optimizer_hyperparameters": [
            {k: v for k, v in g.items() if k != "params"} for g in optimizer["param_groups"]
        ],
        "epoch": sweep.epochs_done[i],
        "global_step": sweep.global_step if i in sweep.active else sweep._stop_step[i],
        "skipped_steps": 0,
        "history": sweep.history[i],
        "rng": rng,
        "rng_ranks": None,
        "callbacks": callbacks,
    }


def _restore(sweep: Sweep, i: int, path: Path) -> None:
    state = load_checkpoint(path)
    sweep.stack.load_member(i, state["model"])
    sweep.adam.load_member(i, state["optimizer"])
    sweep.epochs_done[i] = int(state["epoch"])
    sweep._stop_step[i] = int(state["global_step"])
    sweep.history[i] = list(state["history"])
    sweep.metrics[i] = dict(sweep.history[i][-1]) if sweep.history[i] else {}
    sweep.gens[i].set_state(state["rng"]["torch"])
    if sweep.dev_gens is not sweep.gens and state["rng"].get("cuda"):
        sweep.dev_gens[i].set_state(state["rng"]["cuda"][0])
    saved = state["callbacks"].get("SweepMember")
    if saved is not None:
        sweep.stoppers[i].load_state_dict(saved["stopper"])


def resume_members(sweep: Sweep) -> None:
    """Restore every member from the newest checkpoint in its folder."""
    for i in range(sweep.k):
        folder = sweep.folder(i)
        last = None if folder is None else find_last_checkpoint(folder / "checkpoints")
        if last is None:
            raise ValueError(
                f"resume: member {i} has no checkpoint in "
                f"{'its folder (none given)' if folder is None else folder / 'checkpoints'}"
            )
        _restore(sweep, i, last)
    steps = {sweep._stop_step[i] for i in sweep.active}
    epochs = {sweep.epochs_done[i] for i in sweep.active}
    if len(steps) > 1 or len(epochs) > 1:
        raise ValueError(
            f"resume: the members still training are at different points (epochs "
            f"{sorted(epochs)}, steps {sorted(steps)}); a sweep resumes from checkpoints "
            f"it wrote itself, at one epoch"
        )
    sweep.global_step = steps.pop() if steps else max(sweep._stop_step)


def _writer(sweep: Sweep, i: int) -> Any:
    folder = sweep.folder(i)
    if folder is None:
        return None
    if sweep._writers[i] is None:
        from tensorboardX import SummaryWriter

        suffix = f".{time.time_ns()}"
        sweep._writers[i] = SummaryWriter(str(folder / "tensorboard"), filename_suffix=suffix)
    return sweep._writers[i]


def log_step(
    sweep: Sweep,
    active: list[int],
    total: Tensor,
    rec: Tensor,
    kl: Tensor,
    norm: Tensor,
    beta: Tensor,
) -> None:
    if all(sweep.folder(i) is None for i in active):
        return
    values = torch.stack([total, rec, kl, norm, beta.to(total.dtype)]).detach().tolist()
    for i in active:
        w = _writer(sweep, i)
        if w is None:
            continue
        names = ("loss", "reconstruction", "kl", "grad_norm", "beta")
        for name, row in zip(names, values, strict=True):
            w.add_scalar(f"train/{name}", row[i], sweep.global_step)
        w.add_scalar("train/lr", sweep.members[i].lr, sweep.global_step)


def write_checkpoint(sweep: Sweep, i: int) -> None:
    """Member ``i``'s epoch scalars to TensorBoard and its checkpoint of the epoch."""
    folder = sweep.folder(i)
    if folder is None:
        return
    w = _writer(sweep, i)
    for name, value in sweep.metrics[i].items():
        if name not in ("epoch", "step"):
            w.add_scalar(f"epoch/{name}", value, sweep.epochs_done[i])
    w.flush()
    ckpts = folder / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    save_checkpoint(member_checkpoint(sweep, i), ckpts / f"epoch-{sweep.epochs_done[i]:04d}.pt")
    if sweep.keep_last is not None:
        kept = sorted(ckpts.glob("epoch-*.pt"))
        for old in kept[: max(0, len(kept) - sweep.keep_last)]:
            old.unlink(missing_ok=True)


def write_hparams(sweep: Sweep) -> None:
    """Each member's hyper-parameters and final metrics to its TensorBoard run's HPARAMS tab,
    as :class:`~torchvae.TensorBoardLogger` writes them at the end of a Trainer run."""
    for i, member in enumerate(sweep.members):
        if sweep.folder(i) is None or not sweep.metrics[i]:
            continue
        settings = (member.info or {}).get("settings")
        given = settings if isinstance(settings, dict) else asdict(member)
        hparams = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in given.items()
            if k not in ("folder", "info")
        }
        final = {
            f"hparam/{k}": float(v)
            for k, v in sweep.metrics[i].items()
            if k not in ("epoch", "step", "time") and isinstance(v, (int, float))
        }
        _writer(sweep, i).add_hparams(hparams, final, name="hparams")
