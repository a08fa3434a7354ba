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
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from ._validation import check_positive_int
from .callbacks import HOOKS, Callback, ModelCheckpoint
from .checkpoint import find_last_checkpoint, get_rng_state, load_checkpoint, set_rng_state
from .losses import ELBOLoss, LossOutput

__all__ = ["NonFiniteLossError", "StepOutput", "Trainer"]

Precision = Literal["32", "bf16", "16-mixed"]


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


class _TensorBatches:
    """Mini-batches of in-memory tensors by indexing (no per-example Python work)."""

    def __init__(self, tensors: Sequence[Tensor], batch_size: int, shuffle: bool) -> None:
        if len({t.shape[0] for t in tensors}) != 1:
            raise ValueError(
                f"tensors must have the same length, got {[t.shape[0] for t in tensors]}"
            )
        self.tensors, self.batch_size, self.shuffle = tuple(tensors), batch_size, shuffle

    def __len__(self) -> int:
        return math.ceil(self.tensors[0].shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, ...]]:
        n = self.tensors[0].shape[0]
        # drawn from the global CPU generator, whose state checkpoints save and restore
        order = torch.randperm(n).to(self.tensors[0].device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                parts = [t[start : start + self.batch_size] for t in self.tensors]
            else:
                parts = [t[order[start : start + self.batch_size]] for t in self.tensors]
            yield parts[0] if len(parts) == 1 else tuple(parts)


def _auto_device(device: str | torch.device) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
            parameters (a Gaussian likelihood may learn its scale); a custom optimizer
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
            ``skipped_steps``).
        batch_size: batch size for data given as tensors or datasets (not for loaders).
        log_every_n_steps: how often callbacks log per-step metrics.

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
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.device = _auto_device(device)
        self.model = model.to(self.device)
        self.loss = (ELBOLoss() if loss is None else loss).to(self.device)
        params = [*self.model.parameters(), *self.loss.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=1e-3) if optimizer is None else optimizer
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
        if grad_clip is not None and not (math.isfinite(grad_clip) and grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive finite float or None, got {grad_clip}")
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
        self._compute: Callable[[Tensor, Tensor | None], tuple[Any, LossOutput]] = (
            torch.compile(self._forward_loss) if compile else self._forward_loss
        )
        self.epoch = 0
        self.global_step = 0
        self.skipped_steps = 0
        self.should_stop = False
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self.num_batches: int | None = None
        self.val: Any = None
        self._rng_snapshot: dict[str, Any] | None = None

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files (rank 0, or not distributed)."""
        dist = torch.distributed
        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0

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

    def _batches(self, data: Any, train: bool) -> Iterable[Any]:
        if isinstance(data, Tensor):
            return _TensorBatches([data], self.batch_size, shuffle=train)
        if isinstance(data, TensorDataset):
            return _TensorBatches(data.tensors, self.batch_size, shuffle=train)
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
            return DataLoader(data, batch_size=self.batch_size, shuffle=train)
        if isinstance(data, Iterable):
            return data
        raise TypeError(
            f"data must be a Tensor, a Dataset, a DataLoader or an iterable of batches, "
            f"got {type(data).__name__}"
        )

    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, Tensor):
            x, y = batch, None
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            x, y = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            raise TypeError(
                f"a batch must be a Tensor x or a tuple/list (x, y), got {type(batch).__name__}"
            )
        if not x.is_floating_point():
            hint = " (for uint8 images, use x.float() / 255)" if x.dtype == torch.uint8 else ""
            raise TypeError(f"batch x must be a floating-point tensor, got {x.dtype}{hint}")
        x = x.to(self.device, non_blocking=True)
        return x, (y.to(self.device, non_blocking=True) if isinstance(y, Tensor) else y)

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
                the message names the epoch and step and the last checkpoint written.
            ValueError: an epoch without batches (e.g. ``train`` is an exhausted generator).
            CheckpointError: ``resume`` names a truncated or corrupted file.
        """
        epochs = check_positive_int(epochs, "epochs")
        if resume is not None:
            self.load_state_dict(load_checkpoint(self._resolve(resume)))
        elif self.seed is not None:
            torch.manual_seed(self.seed)
            random.seed(self.seed)
            with contextlib.suppress(ImportError):
                import numpy as np

                np.random.seed(self.seed % 2**32)
        train_batches, self.val = self._batches(train, train=True), val
        self.num_batches = len(train_batches) if isinstance(train_batches, Sized) else None
        self.should_stop = False
        try:
            self._call("on_fit_start")
            while self.epoch < epochs and not self.should_stop:
                self._run_epoch(train_batches, epochs)
            self._call("on_fit_end")
        except BaseException as e:
            self._call("on_exception", e)
            raise

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
        for batch_idx, batch in enumerate(batches):
            x, y = self._unpack(batch)
            self._call("on_train_batch_start", x)
            _, losses = self._compute(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses.total).backward()  # type: ignore[no-untyped-call]
            self.scaler.unscale_(self.optimizer)
            if clip is None:
                grad_norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            else:
                grad_norm = nn.utils.clip_grad_norm_(params, clip)
            finite = torch.isfinite(losses.total)
            if not self.scaler.is_enabled():  # with fp16 the scaler itself skips inf gradients
                finite = finite & torch.isfinite(grad_norm)
            skipped = not bool(finite)
            if skipped:
                self._non_finite(losses.total.detach(), grad_norm, batch_idx, epochs)
            else:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scheduler is not None and self.scheduler_interval == "step":
                    self.scheduler.step()
                parts = torch.stack([losses.total, losses.reconstruction, losses.kl]).detach()
                sums += parts.float() * x.shape[0]
                n_seen += x.shape[0]
            self.global_step += 1
            if self._hooks["on_train_batch_end"]:
                self._call("on_train_batch_end", StepOutput(losses, x, y, grad_norm, skipped))
        if self.global_step == steps0:
            raise ValueError(
                f"train yielded no batches in epoch {self.epoch + 1}; pass data that can be "
                f"iterated again each epoch (Tensor, Dataset, DataLoader, list), not a generator"
            )
        self._rng_snapshot = rng = get_rng_state()
        loss, reconstruction, kl = (sums / max(n_seen, 1)).tolist()
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
        set_rng_state(rng)

    def _non_finite(self, total: Tensor, grad_norm: Tensor, batch_idx: int, epochs: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        what = f"loss {total.item()}, gradient norm {grad_norm.item()}"
        where = (
            f"epoch {self.epoch + 1} of {epochs}, batch {batch_idx + 1} "
            f"(step {self.global_step + 1} overall)"
        )
        if self.nan_policy == "skip":
            self.skipped_steps += 1
            return
        saved = (
            f"the last good checkpoint is {str(self.last_checkpoint)!r}"
            if self.last_checkpoint is not None
            else "no checkpoint was written (add a ModelCheckpoint callback to keep one)"
        )
        raise NonFiniteLossError(
            f"non-finite training values ({what}) at {where}; {saved}. Lower the learning "
            f"rate, set grad_clip=, check the data, or pass nan_policy='skip'"
        )

    @torch.no_grad()
    def evaluate(self, data: Any) -> dict[str, float]:
        r"""Average the objective over ``data``, in nats per example.

        Args:
            data: a Tensor of examples, a Dataset, a DataLoader or an iterable of batches.

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
        try:
            for batch in self._batches(data, train=False):
                x, y = self._unpack(batch)
                _, losses = self._compute(x, y)
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
        if str(resume) == "last":
            folders = [c.dirpath for c in self.callbacks if isinstance(c, ModelCheckpoint)]
            if not folders:
                raise ValueError(
                    "resume='last' needs a ModelCheckpoint callback to know where to look"
                )
            found = find_last_checkpoint(folders[0])
            if found is None:
                raise FileNotFoundError(
                    f"resume='last': no epoch-*.pt checkpoint in {str(folders[0])!r}"
                )
            return found
        path = Path(resume)
        if path.is_dir():
            found = find_last_checkpoint(path)
            if found is None:
                raise FileNotFoundError(f"resume: no epoch-*.pt checkpoint in {str(path)!r}")
            return found
        return path

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
            "epoch": self.epoch,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "history": self.history,
            "rng": self._rng_snapshot if self._rng_snapshot is not None else get_rng_state(),
            "callbacks": {
                key: c.state_dict()
                for key, c in zip(self._callback_keys(), self.callbacks, strict=True)
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (e.g. by :func:`~torchvae.load_checkpoint`)."""
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.skipped_steps, self.history = state["skipped_steps"], list(state["history"])
        for key, c in zip(self._callback_keys(), self.callbacks, strict=True):
            if key in state["callbacks"]:
                c.load_state_dict(state["callbacks"][key])
        set_rng_state(state["rng"])
        self._rng_snapshot = state["rng"]
