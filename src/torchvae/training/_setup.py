"""The parts of a :class:`~torchvae.Trainer` that the loop calls: what it was built with.

:class:`TrainerSetup` turns the Trainer's arguments into the parts (device and precision,
the processes of a DDP run, the optimizers, the fault policy, the callbacks' hooks) and
holds the run's state; :mod:`torchvae.training.trainer` holds the loop that uses them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..callbacks import HOOKS, Callback, ModelCheckpoint
from ..io.checkpoint import load_checkpoint, resolve_checkpoint
from ..likelihoods import Likelihood, check_likelihood
from ..objectives.losses import ELBOLoss, LossOutput
from . import _faults
from ._arguments import check_arguments
from ._batches import as_batches, check_dequantized
from ._distributed import ModelAndLoss, Processes
from ._faults import SkipPolicy
from ._graphs import GraphStep
from ._optimizers import build_optimizers
from ._precision import Precision, PrecisionName, auto_device
from ._resume import ResumeWarning, hyperparameters
from ._state import capture, restore

__all__ = ["TrainerSetup"]


def _overrides(callback: Callback, hook: str) -> bool:
    method = getattr(type(callback), hook, None)
    return callable(method) and method is not getattr(Callback, hook)


class TrainerSetup:
    """A trainer's parts and state; see :class:`~torchvae.Trainer` for the arguments."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        *,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        callbacks: Iterable[Callback] = (),
        device: str | torch.device = "auto",
        precision: PrecisionName = "32",
        grad_clip: float | None = None,
        seed: int | None = None,
        compile: bool = False,
        nan_policy: Literal["raise", "skip"] = "raise",
        batch_size: int = 128,
        log_every_n_steps: int = 50,
        strategy: Literal["auto", "ddp", "none"] = "auto",
        flush_denormal: bool = True,
        max_consecutive_skips: int | None = None,
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
        cuda_graph: bool = True,
    ) -> None:
        self.callbacks = check_arguments(model, loss, optimizer, callbacks, grad_clip, seed)
        flags = {"compile": compile, "flush_denormal": flush_denormal, "cuda_graph": cuda_graph}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.processes = Processes(strategy, auto_device(device))
        self.device = self.processes.device
        self.precision_plugin = Precision(precision, self.device)
        self.precision: str = precision
        self.faults = SkipPolicy(nan_policy, max_consecutive_skips)
        self.model = model.to(self.device)
        self.loss = (ELBOLoss() if loss is None else loss).to(self.device)
        self.optimizer, self.aux_optimizers = build_optimizers(
            self.model, self.loss, optimizer, optimizers
        )
        if self.aux_optimizers and self.processes.enabled:
            raise ValueError("an objective with auxiliary optimizers trains in one process only")
        self.given_hyperparameters = hyperparameters(self.optimizer)  # for the resume rule
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.grad_clip, self.seed, self.flush_denormal = grad_clip, seed, flush_denormal
        self.compiled, self.cuda_graph = compile, cuda_graph
        self._graph: GraphStep | None = None  # made by each fit
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.log_every_n_steps = check_positive_int(log_every_n_steps, "log_every_n_steps")
        self.callbacks.sort(key=lambda c: isinstance(c, ModelCheckpoint))  # saves the others
        self._hooks = {
            h: [getattr(c, h) for c in self.callbacks if _overrides(c, h)] for h in HOOKS
        }
        self._n_samples = getattr(self.loss, "n_samples", None)
        self.conditional = bool(getattr(self.model, "is_conditional", False))
        classes = getattr(self.model, "num_classes", None) if self.conditional else None
        self._num_classes = classes if isinstance(classes, int) else None
        self._evaluate_fn: Callable[[Tensor, Tensor | None], tuple[Any, LossOutput]] = (
            torch.compile(self._forward_loss) if compile else self._forward_loss
        )
        self.ddp = self.processes.wrap(ModelAndLoss(self.model, self.loss, self._forward_loss))
        self._compute: Any = self._evaluate_fn if self.ddp is None else self.ddp
        if compile and self.ddp is not None:
            self._compute = torch.compile(self.ddp)
        self.epoch = self.global_step = 0
        self.should_stop = False
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self.num_batches: int | None = None
        self.val: Any = None
        self.rng_snapshot: dict[str, Any] | None = None
        self.rng_ranks: list[dict[str, Any]] | None = None
        likelihood = getattr(self.model, "likelihood", None)
        self._likelihood: Likelihood | None = (  # what scores the data, for the folded check
            likelihood
            if isinstance(likelihood, Likelihood)
            else check_likelihood(self.loss.likelihood)
            if hasattr(self.loss, "likelihood")
            else None
        )

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files (rank 0, or not distributed)."""
        return self.processes.rank == 0

    @property
    def cuda_graph_status(self) -> str:
        """How the last :meth:`fit` ran its steps: ``"captured"`` (replays of one CUDA
        graph, see ``cuda_graph``) or ``"eager: <why>"``."""
        return "eager: not fitted yet" if self._graph is None else self._graph.status

    @property
    def skipped_steps(self) -> int:
        """Steps skipped for non-finite values (``nan_policy="skip"``), over the run."""
        return self.faults.skipped

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self.faults.skipped = value

    @property
    def rank(self) -> int:
        """This process's rank (0 without DDP)."""
        return self.processes.rank

    @property
    def world_size(self) -> int:
        """How many processes train (1 without DDP)."""
        return self.processes.world_size

    @property
    def distributed(self) -> bool:
        """Whether this run is one of several DDP processes."""
        return self.processes.enabled

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._hooks[hook]:
            method(self, *args)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Any:
        """Call the model as the trainer does (with labels, ``n_samples``) and return its output."""
        kwargs: dict[str, Any] = {} if self._n_samples is None else {"n_samples": self._n_samples}
        if self.conditional:
            if y is None:
                raise ValueError("the model is conditional: batches must be (x, y) pairs")
            kwargs["y"] = y
        return self.model(x, **kwargs)

    def _forward_loss(self, x: Tensor, y: Tensor | None) -> tuple[Any, LossOutput]:
        with self.precision_plugin.autocast():
            out = self.forward(x, y)
            return out, self.loss(out, x)

    def _batches(self, data: Any, train: bool, shard: bool = True) -> Iterable[Any]:
        check_dequantized(getattr(self.model, "likelihood", None), data)
        p, seed = self.processes, 0 if self.seed is None else self.seed
        if shard and p.enabled:
            return as_batches(data, self.batch_size, train, p.rank, p.world_size, seed)
        return as_batches(data, self.batch_size, train)

    def _where(self, batch_idx: int, epochs: int) -> tuple[str, str]:
        """Where the step about to be taken is, and where the last good checkpoint is."""
        at = _faults.where(self.epoch, epochs, batch_idx, self.global_step)
        return at, _faults.last_good(self.last_checkpoint)

    def _finish_epoch(
        self,
        means: list[float],
        terms: Mapping[str, Tensor],
        n_seen: int,
        skipped0: int,
        start: float,
    ) -> None:
        """The epoch's metrics (validation's too), and the scheduler's epoch step."""
        loss, reconstruction, kl = means
        self.epoch += 1
        self.metrics = {
            "epoch": self.epoch,
            "step": self.global_step,
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            **{name: float(total) / n_seen for name, total in terms.items()},
            "beta": float(getattr(self.loss, "beta", 1.0)),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "skipped_steps": self.skipped_steps - skipped0,
            "time": time.perf_counter() - start,
        }
        if self.val is not None:
            val_metrics = {f"val_{k}": v for k, v in self.evaluate(self.val).items()}
            self.metrics.update(val_metrics)
            self._call("on_validation_end", val_metrics)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(self.metrics.get("val_loss", loss))
            else:
                self.scheduler.step()

    def evaluate(self, data: Any, distributed: bool = True) -> dict[str, float]:
        """The objective averaged over ``data``: the loop's, see :meth:`Trainer.evaluate`."""
        raise NotImplementedError

    def _checkpoint_folders(self) -> list[Path]:
        return [c.dirpath for c in self.callbacks if isinstance(c, ModelCheckpoint)]

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer, *self.aux_optimizers.values()]

    def _resume_or_seed(self, resume: str | os.PathLike[str] | None, epochs: int) -> None:
        """Restore the checkpoint ``resume`` names (found on rank 0), or seed the run."""
        if resume is None:
            self.processes.seed(self.seed)
            return
        if not isinstance(resume, (str, os.PathLike)):
            raise TypeError(
                f"resume must be a path, 'last' or None, got {type(resume).__name__} {resume!r}"
            )
        folders = self._checkpoint_folders()
        path = self.processes.on_rank_zero(
            lambda: resolve_checkpoint(resume, folders[0] if folders else None)
        )
        restore(self, load_checkpoint(path), path)
        self.last_checkpoint = path
        if self.epoch >= epochs:
            message = (
                f"{str(path)!r} has {self.epoch} epochs done and epochs={epochs} is the total, "
                f"counting those: nothing to train (pass a larger epochs)"
            )
            warnings.warn(ResumeWarning(message), stacklevel=3)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs: weights, optimizers, counters, random and callback states."""
        return capture(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (e.g. by :func:`~torchvae.load_checkpoint`).

        What may differ from the run that wrote ``state``: the optimizer's numeric
        hyper-parameters (``lr``, ``weight_decay``, ``betas``, ...), which then take this
        trainer's values (``lr`` also as the scheduler's base rate), with a
        :class:`ResumeWarning` listing each change; the moments, step counts and the
        scheduler's position are the checkpoint's. Other optimizer options (``amsgrad``,
        ``nesterov``, ...) stay the checkpoint's, with a warning when they differ.

        Raises:
            CheckpointError: the model's or the loss's tensors (names, shapes), the
                optimizer's type or its parameter groups differ from ``state``'s; the
                message says what, and nothing is changed.

        Warns:
            ResumeWarning: a hyper-parameter changed, or the scheduler is new or gone.
        """
        restore(self, state, None)
