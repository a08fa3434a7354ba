"""The state of a run, as a checkpoint holds it, and its restoration on resume.

The random states saved are those of the end of the last epoch's training, so that
validation and logging done since do not change what a resume continues with; with them,
``k`` epochs plus a resume for ``N - k`` give the same weights, bit for bit on the CPU, as
``N`` epochs in one go. Under DDP every rank's states are kept, so a resume with the same
number of processes is exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..callbacks import Callback
from ..io.checkpoint import get_rng_state, set_rng_state
from ._distributed import Processes, seed_everything
from ._precision import Precision
from ._resume import ResumeWarning, apply_hyperparameters, check_resumable

__all__ = ["Resumable", "callback_keys", "capture", "restore"]


class Resumable(Protocol):
    """The parts of a trainer that its checkpoints hold."""

    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    aux_optimizers: dict[str, torch.optim.Optimizer]
    scheduler: Any
    callbacks: list[Callback]
    epoch: int
    global_step: int
    history: list[dict[str, float]]
    given_hyperparameters: list[dict[str, Any]]
    rng_snapshot: dict[str, Any] | None
    rng_ranks: list[dict[str, Any]] | None

    @property
    def skipped_steps(self) -> int: ...
    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None: ...

    @property
    def precision_plugin(self) -> Precision: ...

    @property
    def processes(self) -> Processes: ...


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """A key per callback: its class name, numbered where several share it."""
    names = [type(c).__name__ for c in callbacks]
    return [n if names.count(n) == 1 else f"{n}#{names[:i].count(n)}" for i, n in enumerate(names)]


def capture(run: Resumable) -> dict[str, Any]:
    """Everything a resume needs, as tensors and plain values."""
    return {
        "model": run.model.state_dict(),
        "loss": run.loss.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "aux_optimizers": {k: o.state_dict() for k, o in run.aux_optimizers.items()},
        "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
        "scaler": run.precision_plugin.scaler.state_dict(),
        "optimizer_type": type(run.optimizer).__qualname__,
        "optimizer_hyperparameters": run.given_hyperparameters,
        "epoch": run.epoch,
        "global_step": run.global_step,
        "skipped_steps": run.skipped_steps,
        "history": run.history,
        "rng": run.rng_snapshot if run.rng_snapshot is not None else get_rng_state(),
        "rng_ranks": run.rng_ranks,
        "callbacks": {
            key: c.state_dict()
            for key, c in zip(callback_keys(run.callbacks), run.callbacks, strict=True)
        },
    }


def _warn_changes(run: Resumable, state: Mapping[str, Any], where: Path) -> None:
    changes = apply_hyperparameters(
        run.optimizer,
        run.scheduler,
        run.given_hyperparameters,
        state.get("optimizer_hyperparameters"),
    )
    if (run.scheduler is None) != (state["scheduler"] is None):
        changes.append(
            "the checkpoint's run had no learning-rate scheduler: this one starts "
            "from its beginning"
            if run.scheduler is not None
            else "the checkpoint's run had a learning-rate scheduler, this trainer has "
            "none: the learning rate stays as restored"
        )
    if changes:
        warnings.warn(
            ResumeWarning(
                f"resuming from {str(where)!r} with other settings than its run "
                f"(see the resume guide for the rule): " + "; ".join(changes)
            ),
            stacklevel=4,
        )


def restore(run: Resumable, state: Mapping[str, Any], path: Path | None) -> None:
    """Restore what :func:`capture` returned; check first that it fits (nothing changes
    when it does not).

    Raises:
        CheckpointError: the architecture, the optimizer's type or its groups differ.
    """
    where = path if path is not None else Path("<state dict>")
    check_resumable(where, state, run.model.state_dict(), run.loss.state_dict(), run.optimizer)
    run.model.load_state_dict(state["model"])
    run.loss.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    for name, saved in state.get("aux_optimizers", {}).items():
        if name in run.aux_optimizers:
            run.aux_optimizers[name].load_state_dict(saved)
    if run.scheduler is not None and state["scheduler"] is not None:
        run.scheduler.load_state_dict(state["scheduler"])
    _warn_changes(run, state, where)
    if state["scaler"]:
        run.precision_plugin.scaler.load_state_dict(state["scaler"])
    run.epoch, run.global_step = state["epoch"], state["global_step"]
    run.skipped_steps, run.history = state["skipped_steps"], list(state["history"])
    for key, c in zip(callback_keys(run.callbacks), run.callbacks, strict=True):
        if key in state["callbacks"]:
            c.load_state_dict(state["callbacks"][key])
    processes = run.processes
    rng, ranks = state["rng"], state.get("rng_ranks")
    same_world = ranks is not None and len(ranks) == processes.world_size
    if processes.enabled and same_world:
        assert ranks is not None
        rng = ranks[processes.rank]
    set_rng_state(rng)
    if processes.enabled and not same_world:
        # another number of processes: continue from rank 0's stream, one per rank
        seed_everything(int(torch.randint(2**31, ())) + processes.rank)
        rng = get_rng_state()
    run.rng_snapshot = rng
    run.rng_ranks = ranks if processes.enabled and same_world else None
