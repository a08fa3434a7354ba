r"""The training loop: :class:`Trainer` fits a VAE and evaluates it.

The loop lives in one place (:meth:`Trainer.fit`); everything optional (logging,
checkpoints, early stopping, progress, :math:`\beta` schedules) hangs off it as callbacks
(:mod:`torchvae.callbacks`), which are called only for the hooks they define.

Every metric is in nats per example. ``evaluate`` reports the negative ELBO
:math:`\text{reconstruction} + \mathrm{KL}` (whatever :math:`\beta` or free bits the
training loss uses; for an :class:`~torchvae.IWAELoss`, its bound) and bits per dimension
:math:`\text{loss} / (D \ln 2)`.

Determinism: with ``seed=``, a run is reproducible; validation and the callbacks' epoch-end
work never perturb the training random stream, and a checkpoint holds the random states
of the end of the epoch's training, so that ``k`` epochs plus a resume for ``N - k`` give
the same weights, bit for bit on CPU, as ``N`` epochs in one go.

Several processes (``torchrun``): see :class:`Trainer`, "Distributed training".
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ._batches import as_batches, unpack
from ._distributed import (
    ModelAndLoss,
    all_gather,
    all_reduce_sums,
    init_process_group,
    rank_device,
    wants_ddp,
)
from ._labels import check_labels
from ._labels import labels_ok as _labels_ok
from ._resume import ResumeWarning, apply_hyperparameters, check_resumable, hyperparameters
from ._validation import check_finite, check_positive_int, trusted_inputs
from .callbacks import HOOKS, Callback, ModelCheckpoint
from .checkpoint import get_rng_state, load_checkpoint, resolve_checkpoint, set_rng_state
from .likelihoods import Likelihood, check_likelihood
from .losses import ELBOLoss, LossOutput

__all__ = ["NonFiniteLossError", "ResumeWarning", "StepOutput", "Trainer"]

Precision = Literal["32", "bf16", "16-mixed"]
Strategy = Literal["auto", "ddp", "none"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or inf during training."""


class StepOutput(NamedTuple):
    """What a training step hands to ``on_train_batch_end``.

    Attributes:
        losses: the loss's :class:`~torchvae.LossOutput`, still attached to the graph;
            read values with ``.item()`` only when needed (each synchronizes a GPU).
        x: the batch, on the training device.
        y: its labels, or ``None``.
        grad_norm: the total gradient 2-norm, before clipping.
        skipped: the step was skipped for a non-finite loss (``nan_policy="skip"``).
    """

    losses: LossOutput
    x: Tensor
    y: Tensor | None
    grad_norm: Tensor
    skipped: bool


_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _auto_device(device: str | torch.device) -> torch.device:
    if device != "auto":
        if not isinstance(device, (str, torch.device)):
            raise TypeError(
                f"device must be 'auto', a device name or a torch.device, got "
                f"{type(device).__name__} {device!r}"
            )
        try:
            found = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', ...; got {device!r}") from e
        if found.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but CUDA is not available")
        return found
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_arguments(
    loss: object,
    optimizer: object,
    callbacks: object,
    grad_clip: object,
    seed: object,
    compile: object,
) -> None:
    if loss is not None and not isinstance(loss, nn.Module):
        raise TypeError(
            f"loss must be a loss module such as ELBOLoss() or None, got {type(loss).__name__}"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
        )
    if not isinstance(callbacks, list) or any(not isinstance(c, Callback) for c in callbacks):
        raise TypeError(f"callbacks must be an iterable of Callback objects, got {callbacks!r}")
    if grad_clip is not None:
        if isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float)):
            raise TypeError(f"grad_clip must be a positive float or None, got {grad_clip!r}")
        if not (math.isfinite(grad_clip) and grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive finite float or None, got {grad_clip}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be a bool, got {type(compile).__name__} {compile!r}")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


def _default_optimizer(params: list[nn.Parameter], lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam, fused where PyTorch has the fused kernel for every parameter."""
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in _FUSED_DTYPES for p in params
    )
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def _flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero (a denormal then reads as 0)."""
    return float(torch.tensor(1e-39) * 1.0) == 0.0


@contextlib.contextmanager
def _flush_denormal(enabled: bool) -> Iterator[None]:
    """Flush denormal floats to zero on the CPU inside the block; restore the mode after.

    Adam's moment estimates for a unit whose gradient has become exactly zero (a dead
    ReLU) decay geometrically and pass through the denormal range (below 1.2e-38), where
    x86 arithmetic takes a slow path (a fused Adam step over a 400x784 weight with
    denormal moments: 300 us instead of 150 us here). Flushing changes only values below
    1.2e-38.
    """
    if not enabled or _flushing_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _finite(params: list[Tensor]) -> bool:
    return bool(torch.isfinite(nn.utils.get_total_norm(params, norm_type=math.inf)))


def _overrides(callback: object, hook: str) -> bool:
    method = getattr(type(callback), hook, None)
    return callable(method) and method is not getattr(Callback, hook)


class Trainer:
    r"""Fits a VAE: the loop, mixed precision, clipping, NaN handling, checkpoints, resume.

    Args:
        model: a :class:`~torchvae.VAE` or any module whose ``forward(x)`` returns a
            :class:`~torchvae.VAEOutput`. With ``model.is_conditional = True`` it is
            called as ``model(x, y=y)`` and batches must carry labels.
        loss: the objective; default :class:`~torchvae.ELBOLoss`. When it has
            ``n_samples`` (e.g. :class:`~torchvae.IWAELoss`) the model is called with it.
        optimizer: default ``Adam(lr=1e-3)`` over the model's *and the loss's*
            parameters (a Gaussian likelihood may learn its scale), with PyTorch's fused
            kernel on CPU and CUDA (one pass over the parameters instead of a dozen
            ``foreach`` ops: 10-15% of a small MLP's training step); a custom optimizer
            should include the loss's parameters too.
        scheduler: a learning-rate scheduler, stepped after each epoch (or each step with
            ``scheduler_interval="step"``); ``ReduceLROnPlateau`` is given the epoch's
            ``val_loss`` (or ``loss`` without validation data).
        scheduler_interval: ``"epoch"`` or ``"step"``.
        callbacks: :class:`~torchvae.callbacks.Callback` objects.
        device: ``"auto"`` (cuda, then mps, then cpu) or a device.
        precision: ``"32"``; ``"bf16"`` (autocast, CPU or GPU); ``"16-mixed"`` (float16
            autocast with gradient scaling, CUDA only).
        grad_clip: clip the total gradient 2-norm to this value.
        seed: seed every global random generator (torch, CUDA, ``random``, NumPy) when
            :meth:`fit` starts; a resume restores the saved states instead.
        compile: run the forward pass and the loss through :func:`torch.compile`.
        nan_policy: on a NaN/inf loss or gradient norm, ``"raise"`` a
            :class:`NonFiniteLossError` or ``"skip"`` the step (counted in
            ``skipped_steps``). Skipping never hides a run that stopped learning: an
            epoch whose every step is skipped (or ``max_consecutive_skips`` skipped
            steps in a row) raises :class:`NonFiniteLossError` too, before that epoch
            is checkpointed. NaN/inf *weights* stop the run under either policy
            (no later step could succeed); they are checked at the end of every epoch,
            before any checkpoint, so a NaN never reaches a checkpoint file.
        batch_size: batch size for data given as tensors or datasets (not for loaders).
        log_every_n_steps: how often callbacks log per-step metrics.
        strategy: ``"auto"``: distributed data parallel when a process group is
            initialized or the launcher set ``WORLD_SIZE > 1`` (``torchrun``), else one
            process; ``"ddp"``: require it (also for a single process under torchrun);
            ``"none"``: never (each process trains alone).
        max_consecutive_skips: with ``nan_policy="skip"``, stop after this many skipped
            steps in a row (within one :meth:`fit` call); ``None`` (the default): only a
            wholly skipped epoch stops.
        flush_denormal: on the CPU, treat floats below :math:`1.2 \cdot 10^{-38}`
            (denormals) as zero while :meth:`fit` runs (:func:`torch.set_flush_denormal`;
            the previous mode is restored after). Adam's moments for dead ReLU units decay
            through that range, where x86 arithmetic is slow: a fused Adam step over a
            400x784 weight with denormal moments took twice as long here without it.

    Distributed training:
        Under ``torchrun`` (``torchrun --standalone --nproc_per_node=2 train.py``; for
        several machines add ``--nnodes``, ``--rdzv-backend=c10d`` and
        ``--rdzv-endpoint=$MASTER_ADDR:29500``) the trainer starts the process group
        (``nccl`` on CUDA, ``gloo`` on CPU), wraps the model and the loss in
        :class:`~torch.nn.parallel.DistributedDataParallel`, gives each rank its share of
        the data (padded so every rank runs the same number of steps, shuffled from
        ``seed + epoch``), all-reduces the epoch's metrics so that every rank reports the
        mean over all examples, and writes files on rank 0 only, with a barrier after
        each epoch. Rank ``r`` seeds with ``seed + r``; checkpoints hold every rank's
        random states, so a resume with the same number of processes is exact. The batch
        size is per process. The documentation's "Several GPUs or machines" guide has
        the details.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 2), Decoder(2, 8, 16))
        >>> trainer = Trainer(model, device="cpu", seed=0, batch_size=32)
        >>> trainer.fit(torch.rand(64, 16), epochs=2)
        >>> sorted(trainer.evaluate(torch.rand(32, 16)))
        ['bits_per_dim', 'kl', 'loss', 'reconstruction']
    """

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
        precision: Precision = "32",
        grad_clip: float | None = None,
        seed: int | None = None,
        compile: bool = False,
        nan_policy: Literal["raise", "skip"] = "raise",
        batch_size: int = 128,
        log_every_n_steps: int = 50,
        strategy: Strategy = "auto",
        flush_denormal: bool = True,
        max_consecutive_skips: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if strategy not in ("auto", "ddp", "none"):
            raise ValueError(f"strategy must be one of ('auto', 'ddp', 'none'), got {strategy!r}")
        if isinstance(callbacks, Iterable):
            callbacks = list(callbacks)
        _check_arguments(loss, optimizer, callbacks, grad_clip, seed, compile)
        if not isinstance(flush_denormal, bool):
            raise TypeError(
                f"flush_denormal must be a bool, got {type(flush_denormal).__name__} "
                f"{flush_denormal!r}"
            )
        self.flush_denormal = flush_denormal
        distributed = wants_ddp(strategy)
        self.device = _auto_device(device)
        if distributed:
            self.device = rank_device(self.device)
        self.model = model.to(self.device)
        self.loss = (ELBOLoss() if loss is None else loss).to(self.device)
        params = [*self.model.parameters(), *self.loss.parameters()]
        self.optimizer = _default_optimizer(params) if optimizer is None else optimizer
        self._given_hyperparameters = hyperparameters(self.optimizer)  # for the resume rule
        self.scheduler = scheduler
        for name, value, allowed in (
            ("scheduler_interval", scheduler_interval, ("epoch", "step")),
            ("precision", precision, ("32", "bf16", "16-mixed")),
            ("nan_policy", nan_policy, ("raise", "skip")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if precision == "16-mixed" and self.device.type != "cuda":
            raise ValueError(f"precision='16-mixed' needs a CUDA device, got {self.device}")
        if distributed:
            init_process_group(self.device)
        self.rank = dist.get_rank() if distributed else 0
        self.world_size = dist.get_world_size() if distributed else 1
        self.distributed = distributed
        self.scheduler_interval, self.precision, self.nan_policy = (
            scheduler_interval,
            precision,
            nan_policy,
        )
        self.grad_clip, self.seed = grad_clip, seed
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.log_every_n_steps = check_positive_int(log_every_n_steps, "log_every_n_steps")
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "16-mixed")
        self.callbacks = sorted(callbacks, key=lambda c: isinstance(c, ModelCheckpoint))
        self._hooks = {
            h: [getattr(c, h) for c in self.callbacks if _overrides(c, h)] for h in HOOKS
        }
        self._n_samples = getattr(self.loss, "n_samples", None)
        self._conditional = bool(getattr(self.model, "is_conditional", False))
        self._evaluate_fn: Callable[[Tensor, Tensor | None], tuple[Any, LossOutput]] = (
            torch.compile(self._forward_loss) if compile else self._forward_loss
        )
        self._compute = self._evaluate_fn
        if distributed:
            joint = ModelAndLoss(self.model, self.loss, self._forward_loss)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: DistributedDataParallel | None = DistributedDataParallel(
                joint, device_ids=ids
            )
            self._compute = torch.compile(self.ddp) if compile else self.ddp
        else:
            self.ddp = None
        self.epoch = 0
        self.global_step = 0
        self.skipped_steps = 0
        self.max_consecutive_skips = (
            None
            if max_consecutive_skips is None
            else check_positive_int(max_consecutive_skips, "max_consecutive_skips")
        )
        self._skip_run = 0  # skipped steps in a row
        self.should_stop = False
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self.num_batches: int | None = None
        self.val: Any = None
        self._rng_snapshot: dict[str, Any] | None = None
        self._loss_likelihood: Likelihood | None = None
        self._rng_ranks: list[dict[str, Any]] | None = None

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files (rank 0, or not distributed)."""
        return self.rank == 0

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._hooks[hook]:
            method(self, *args)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Any:
        """Call the model as the trainer does (with labels, ``n_samples``) and return its output."""
        kwargs: dict[str, Any] = {} if self._n_samples is None else {"n_samples": self._n_samples}
        if self._conditional:
            if y is None:
                raise ValueError("the model is conditional: batches must be (x, y) pairs")
            kwargs["y"] = y
        return self.model(x, **kwargs)

    def _forward_loss(self, x: Tensor, y: Tensor | None) -> tuple[Any, LossOutput]:
        with self._autocast():
            out = self.forward(x, y)
            return out, self.loss(out, x)

    def _batches(self, data: Any, train: bool, shard: bool = True) -> Iterable[Any]:
        seed = 0 if self.seed is None else self.seed
        if shard and self.distributed:
            return as_batches(data, self.batch_size, train, self.rank, self.world_size, seed)
        return as_batches(data, self.batch_size, train)

    def fit(
        self,
        train: Any,
        val: Any = None,
        epochs: int = 1,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        """Train until ``epochs`` epochs are done in total.

        Args:
            train: a Tensor of examples, a (Tensor)Dataset, a DataLoader, or any iterable
                of batches ``x`` or ``(x, y)``; batches must be floating point. Its (or its
                sampler's) ``set_epoch(epoch)`` is called before each epoch.
            val: validation data, in the same forms; evaluated after each epoch.
            epochs: the total number of epochs, counting those done before a resume.
            resume: a checkpoint file, a directory of them, or ``"last"`` (the newest in
                the :class:`~torchvae.callbacks.ModelCheckpoint` directory).

        Raises:
            NonFiniteLossError: a NaN/inf loss or gradient norm with ``nan_policy="raise"``;
                with ``"skip"``, an epoch of only skipped steps or ``max_consecutive_skips``
                skipped steps in a row;
                the message names the epoch and step and the last checkpoint written.
            ValueError: an epoch without batches (e.g. ``train`` is an exhausted generator).
            CheckpointError: ``resume`` names a truncated or corrupted file, or one written
                for another architecture or optimizer type (the message says what
                differs; see :meth:`load_state_dict` for what may change).

        Warns:
            ResumeWarning: the resumed run uses hyper-parameters other than the
                checkpoint's (see :meth:`load_state_dict`), or ``epochs`` is not more than
                the epochs already done.
            OSError: an output directory is not writable, or a checkpoint cannot hold the
                weights on the free disk space (before training); a file could not be
                written during training (e.g. the disk is full): the message names the
                file and the last good checkpoint, and the trainer's state in memory is
                intact, so ``save_checkpoint(trainer.state_dict(), path)`` can keep it
                elsewhere.
        """
        epochs = check_positive_int(epochs, "epochs")
        if resume is not None and not isinstance(resume, (str, os.PathLike)):
            raise TypeError(
                f"resume must be a path, 'last' or None, got {type(resume).__name__} {resume!r}"
            )
        if resume is not None:
            path = self._resolve_on_rank_zero(resume)
            self._restore(load_checkpoint(path), path)
            self.last_checkpoint = path
            if self.epoch >= epochs:
                warnings.warn(
                    ResumeWarning(
                        f"{str(path)!r} has {self.epoch} epochs done and epochs={epochs} is "
                        f"the total, counting those: nothing to train (pass a larger epochs)"
                    ),
                    stacklevel=2,
                )
        else:
            self._seed_ranks()
        train_batches, self.val = self._batches(train, train=True), val
        self.num_batches = len(train_batches) if isinstance(train_batches, Sized) else None
        self.should_stop = False
        self._skip_run = 0
        steps0 = self.global_step
        try:
            self._call("on_fit_start")
            if self.is_global_zero:
                self._check_disk_space()
            if self.distributed:
                dist.barrier()
            with _flush_denormal(self.flush_denormal and self.device.type == "cpu"):
                while self.epoch < epochs and not self.should_stop:
                    self._run_epoch(train_batches, epochs)
            self._call("on_fit_end")
        except OSError as e:
            # After steps were taken, say what is safe where (before, the error says enough).
            error = e if self.global_step == steps0 else self._write_failed(e)
            self._call("on_exception", error)
            if error is e:
                raise
            raise error from e
        except BaseException as e:
            self._call("on_exception", e)
            raise

    def _seed_ranks(self) -> None:
        if not self.distributed:
            if self.seed is not None:
                _seed_everything(self.seed)
            return
        seed = [self.seed if self.seed is not None else int(torch.randint(2**31, ()))]
        if self.seed is None:
            dist.broadcast_object_list(seed, src=0)
        _seed_everything(seed[0] + self.rank)

    def _resolve_on_rank_zero(self, resume: str | os.PathLike[str]) -> Path:
        if not self.distributed:
            return self._resolve(resume)
        found: list[Any] = [None]
        if self.is_global_zero:
            try:
                found[0] = str(self._resolve(resume))
            except (OSError, ValueError) as e:
                found[0] = e
        dist.broadcast_object_list(found, src=0)  # every rank loads the same file
        if isinstance(found[0], BaseException):
            raise found[0]
        return Path(found[0])

    def _where(self, batch_idx: int, epochs: int) -> str:
        return (
            f"epoch {self.epoch + 1} of {epochs}, batch {batch_idx + 1} "
            f"(step {self.global_step + 1} overall)"
        )

    def _last_good(self) -> str:
        if self.last_checkpoint is not None:
            return f"the last good checkpoint is {str(self.last_checkpoint)!r}"
        return "no checkpoint was written (add a ModelCheckpoint callback to keep one)"

    def _write_failed(self, e: OSError) -> OSError:
        return OSError(
            e.errno,
            f"{e.strerror or e} (after step {self.global_step}, {self.epoch} epochs done). "
            f"Training stopped; the model, optimizer and all other state in memory are "
            f"intact: keep them with torchvae.checkpoint.save_checkpoint(trainer.state_dict(), "
            f"path) on another disk, or free space and resume; {self._last_good()}",
            e.filename,
        )

    def _check_disk_space(self) -> None:
        tensors = [
            t
            for state in (self.model.state_dict(), self.loss.state_dict())
            for t in state.values()
            if isinstance(t, Tensor)
        ]
        weights = sum(t.numel() * t.element_size() for t in tensors)
        moments = sum(
            t.numel() * t.element_size()
            for state in self.optimizer.state.values()
            for t in state.values()
            if isinstance(t, Tensor)
        )
        need = weights + (moments or 2 * weights)  # before the first step: Adam's two moments
        for c in self.callbacks:
            if isinstance(c, ModelCheckpoint) and c.dirpath.is_dir():
                free = shutil.disk_usage(c.dirpath).free
                if free < need:
                    raise OSError(
                        errno.ENOSPC,
                        f"checkpoint directory {str(c.dirpath)!r} has {free / 2**20:.1f} MiB "
                        f"free, but one checkpoint needs about {need / 2**20:.1f} MiB (weights "
                        f"and optimizer state); free space or choose another directory",
                    )

    def _run_epoch(self, batches: Iterable[Any], epochs: int) -> None:
        for owner in (batches, getattr(batches, "sampler", None)):
            set_epoch = getattr(owner, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(self.epoch)
        self.model.train()
        self._call("on_train_epoch_start")
        start, clip = time.perf_counter(), self.grad_clip
        sums, n_seen = torch.zeros(3, device=self.device), 0
        skipped0, steps0 = self.skipped_steps, self.global_step
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # Batches of uint8 images are in [0, 1] by construction: no need to read them.
        check_values = not getattr(batches, "in_unit_interval", False)
        num_classes = getattr(self.model, "num_classes", None) if self._conditional else None
        for batch_idx, batch in enumerate(batches):
            x, y = unpack(batch, self.device)
            self._call("on_train_batch_start", x)
            labels_ok, y_in = None, y
            if isinstance(num_classes, int) and isinstance(y, Tensor) and not y.is_floating_point():
                # Out-of-range labels would fail deep in the embedding; the step runs on
                # clamped ones and its one check below names the batch instead.
                labels_ok, y_in = _labels_ok(y, num_classes), y.clamp(0, num_classes - 1)
            try:
                # Value checks are folded into the one check of the step below.
                with trusted_inputs():
                    _, losses = self._compute(x, y_in)
            except ValueError as e:  # the model's own checks; NaN weights are ours to name
                if _finite(params):
                    raise
                raise NonFiniteLossError(
                    f"the weights hold NaN or inf at {self._where(batch_idx, epochs)} (the "
                    f"model said: {e}); {self._last_good()}"
                ) from e
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses.total).backward()  # type: ignore[no-untyped-call]
            self.scaler.unscale_(self.optimizer)
            if clip is None:
                grad_norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            else:
                grad_norm = nn.utils.clip_grad_norm_(params, clip)
            finite = torch.isfinite(losses.total)
            if check_values:
                finite = finite & self._target_ok(x)
            if labels_ok is not None:
                finite = finite & labels_ok
            if not self.scaler.is_enabled():  # with fp16 the scaler itself skips inf gradients
                finite = finite & torch.isfinite(grad_norm)
            skipped = not bool(finite)  # the step's one device synchronisation
            if skipped:
                self._check_batch(x, y, batch_idx, epochs)
                if not _finite(params):  # skipping steps cannot clean the weights
                    raise NonFiniteLossError(
                        f"the weights hold NaN or inf at {self._where(batch_idx, epochs)}; "
                        f"{self._last_good()}"
                    )
                self._non_finite(losses.total.detach(), grad_norm, batch_idx, epochs)
            else:
                self._skip_run = 0
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scheduler is not None and self.scheduler_interval == "step":
                    self.scheduler.step()
                parts = torch.stack([losses.total, losses.reconstruction, losses.kl])
                sums.add_(parts.detach(), alpha=x.shape[0])
                n_seen += x.shape[0]
            self.global_step += 1
            if self._hooks["on_train_batch_end"]:
                self._call("on_train_batch_end", StepOutput(losses, x, y, grad_norm, skipped))
        if self.global_step == steps0:
            raise ValueError(
                f"train yielded no batches in epoch {self.epoch + 1}; pass data that can be "
                f"iterated again each epoch (Tensor, Dataset, DataLoader, list), not a generator"
            )
        if not _finite(params):
            raise NonFiniteLossError(
                f"the weights hold NaN or inf at the end of epoch {self.epoch + 1} of {epochs} "
                f"(step {self.global_step}); they were not checkpointed; {self._last_good()}"
            )
        self._rng_snapshot = rng = get_rng_state()
        if self.distributed:
            sums, n_seen = all_reduce_sums(sums, n_seen)
            self._rng_ranks = all_gather(rng)
        if n_seen == 0:  # every step skipped (on every rank): nothing was learnt
            raise NonFiniteLossError(
                f"every step of epoch {self.epoch + 1} of {epochs} "
                f"({self.global_step - steps0} steps) was skipped for non-finite values "
                f"(nan_policy='skip'); the epoch was not checkpointed; {self._last_good()}. "
                f"Lower the learning rate, set grad_clip=, or check the data"
            )
        loss, reconstruction, kl = (sums / n_seen).tolist() if n_seen else [math.nan] * 3
        self.epoch += 1
        self.metrics = {
            "epoch": self.epoch,
            "step": self.global_step,
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
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
        self.history.append(dict(self.metrics))
        self._call("on_train_epoch_end")
        if self.distributed:
            dist.barrier()  # no rank starts the next epoch before rank 0's files are written
        set_rng_state(rng)

    def _likelihood(self) -> Likelihood | None:
        """What scores the data: the model's likelihood or, for a user-written model, the
        loss's (Bernoulli by default); ``None`` for a loss without one."""
        found = getattr(self.model, "likelihood", None)
        if isinstance(found, Likelihood):
            return found
        if not hasattr(self.loss, "likelihood"):
            return None
        if self._loss_likelihood is None:
            self._loss_likelihood = check_likelihood(getattr(self.loss, "likelihood", None))
        return self._loss_likelihood

    def _target_ok(self, x: Tensor) -> Tensor:
        likelihood = self._likelihood()
        return likelihood.target_ok(x) if likelihood is not None else torch.isfinite(x).all()

    def _check_batch(self, x: Tensor, y: Tensor | None, batch_idx: int, epochs: int) -> None:
        """Name bad data (NaN, values outside the likelihood's support, labels out of
        range) and where it was."""
        likelihood = self._likelihood()
        num_classes = getattr(self.model, "num_classes", None)
        try:
            if likelihood is not None:
                likelihood.validate_target(x, "batch x")
            else:
                check_finite(x, "batch x")
            if self._conditional and isinstance(num_classes, int) and isinstance(y, Tensor):
                check_labels(y, y.shape[0], y.device, num_classes, "batch y")
        except ValueError as e:
            raise ValueError(f"{e} (at {self._where(batch_idx, epochs)})") from None

    def _non_finite(self, total: Tensor, grad_norm: Tensor, batch_idx: int, epochs: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        what = f"loss {total.item()}, gradient norm {grad_norm.item()}"
        if self.nan_policy == "skip":
            self.skipped_steps += 1
            self._skip_run += 1
            limit = self.max_consecutive_skips
            if limit is None or self._skip_run < limit:
                return
            raise NonFiniteLossError(
                f"{self._skip_run} steps in a row were skipped for non-finite values "
                f"(max_consecutive_skips={limit}), the last at {self._where(batch_idx, epochs)} "
                f"({what}); {self._last_good()}. Lower the learning rate, set grad_clip=, or "
                f"check the data"
            )
        raise NonFiniteLossError(
            f"non-finite training values ({what}) at {self._where(batch_idx, epochs)}; "
            f"{self._last_good()}. Lower the "
            f"learning rate, set grad_clip=, check the data, or pass nan_policy='skip'"
        )

    @torch.no_grad()
    def evaluate(self, data: Any, distributed: bool = True) -> dict[str, float]:
        r"""Average the objective over ``data``, in nats per example.

        Under DDP every rank must call it (it all-reduces): each evaluates its share of
        ``data`` (split as in training, without padding for tensors and datasets) and
        all get the mean over every example.

        Args:
            data: a Tensor of examples, a Dataset, a DataLoader or an iterable of batches.
            distributed: ``False`` evaluates all of ``data`` in this process alone, with no
                communication (e.g. on rank 0 only).

        Returns:
            ``loss`` (the negative ELBO, :math:`\text{reconstruction} + \mathrm{KL}` with
            :math:`\beta = 1` and no free bits; the loss's own bound for other losses),
            ``reconstruction``, ``kl`` and ``bits_per_dim`` :math:`= \text{loss}/(D \ln 2)`
            with :math:`D` features per example; each weighted by batch size.

        Raises:
            ValueError: ``data`` holds no examples.
        """
        was_training = self.model.training
        self.model.eval()
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums, n, dims = torch.zeros(3, dtype=dtype, device=self.device), 0, 1
        shard = distributed and self.distributed
        try:
            for batch in self._batches(data, train=False, shard=shard):
                x, y = unpack(batch, self.device)
                _, losses = self._evaluate_fn(x, y)
                total = (
                    losses.reconstruction + losses.kl
                    if isinstance(self.loss, ELBOLoss)
                    else losses.total
                )
                sums += (
                    torch.stack([total, losses.reconstruction, losses.kl]).to(dtype) * x.shape[0]
                )
                n, dims = n + x.shape[0], x[0].numel()
        finally:
            self.model.train(was_training)
        if shard:
            sums, n = all_reduce_sums(sums, n)
            widest = torch.tensor([dims if n else 0], device=self.device)
            dist.all_reduce(widest, op=dist.ReduceOp.MAX)
            dims = int(widest.item())
        if n == 0:
            raise ValueError("data for evaluate holds no examples")
        loss, reconstruction, kl = (sums / n).tolist()
        return {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": loss / (dims * math.log(2.0)),
        }

    def _resolve(self, resume: str | os.PathLike[str]) -> Path:
        folders = [c.dirpath for c in self.callbacks if isinstance(c, ModelCheckpoint)]
        return resolve_checkpoint(resume, folders[0] if folders else None)

    def _callback_keys(self) -> list[str]:
        names = [type(c).__name__ for c in self.callbacks]
        return [
            n if names.count(n) == 1 else f"{n}#{names[:i].count(n)}" for i, n in enumerate(names)
        ]

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs: weights, optimizer, counters, random and callback states.

        The random states are those of the end of the last epoch's training, so that
        validation and logging done since do not change what a resume continues with.
        """
        return {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "optimizer_type": type(self.optimizer).__qualname__,
            "optimizer_hyperparameters": self._given_hyperparameters,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "history": self.history,
            "rng": self._rng_snapshot if self._rng_snapshot is not None else get_rng_state(),
            "rng_ranks": self._rng_ranks,
            "callbacks": {
                key: c.state_dict()
                for key, c in zip(self._callback_keys(), self.callbacks, strict=True)
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (e.g. by :func:`~torchvae.load_checkpoint`).

        What may differ from the run that wrote ``state``: the optimizer's numeric
        hyper-parameters (``lr``, ``weight_decay``, ``betas``, ...): where this trainer's
        optimizer was built with another value, that value is used (for ``lr`` also as
        the scheduler's base rate) and a :class:`ResumeWarning` lists each change; the
        moments, step counts and the scheduler's position are the checkpoint's. Values
        left unchanged are restored exactly. Other optimizer options (``amsgrad``,
        ``nesterov``, ...) stay the checkpoint's, with a warning when they differ.

        Raises:
            CheckpointError: the model's or the loss's tensors (names, shapes), the
                optimizer's type or its parameter groups differ from ``state``'s; the
                message says what, and nothing is changed.

        Warns:
            ResumeWarning: a hyper-parameter changed, or the scheduler is new or gone.
        """
        self._restore(state, None)

    def _restore(self, state: dict[str, Any], path: Path | None) -> None:
        where = path if path is not None else Path("<state dict>")
        check_resumable(
            where, state, self.model.state_dict(), self.loss.state_dict(), self.optimizer
        )
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        changes = apply_hyperparameters(
            self.optimizer,
            self.scheduler,
            self._given_hyperparameters,
            state.get("optimizer_hyperparameters"),
        )
        if (self.scheduler is None) != (state["scheduler"] is None):
            changes.append(
                "the checkpoint's run had no learning-rate scheduler: this one starts "
                "from its beginning"
                if self.scheduler is not None
                else "the checkpoint's run had a learning-rate scheduler, this trainer has "
                "none: the learning rate stays as restored"
            )
        if changes:
            warnings.warn(
                ResumeWarning(
                    f"resuming from {str(where)!r} with other settings than its run "
                    f"(see the resume guide for the rule): " + "; ".join(changes)
                ),
                stacklevel=3,
            )
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.skipped_steps, self.history = state["skipped_steps"], list(state["history"])
        for key, c in zip(self._callback_keys(), self.callbacks, strict=True):
            if key in state["callbacks"]:
                c.load_state_dict(state["callbacks"][key])
        rng, ranks = state["rng"], state.get("rng_ranks")
        same_world = ranks is not None and len(ranks) == self.world_size
        if self.distributed and same_world:
            assert ranks is not None
            rng = ranks[self.rank]
        set_rng_state(rng)
        if self.distributed and not same_world:
            # another number of processes: continue from rank 0's stream, one per rank
            _seed_everything(int(torch.randint(2**31, ())) + self.rank)
            rng = get_rng_state()
        self._rng_snapshot = rng
        self._rng_ranks = ranks if self.distributed and same_world else None
