r"""Many models at once: :class:`Sweep` trains ``K`` VAEs of one architecture in lockstep.

Each member has its own seed, :math:`\beta` (with an optional linear warm-up), learning
rate, free bits, Adam moments, metrics, early stopping, checkpoints and TensorBoard run;
their weights are stacked (:mod:`._stacked`) so that one step of the sweep is one pass of
batched matrix products for all of them. A member's numbers are those of a
:class:`~torchvae.Trainer` run with the same model, seed and settings, up to float
rounding: its data order and its noise come from its own generator, seeded as the
Trainer seeds the global one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..schedules import Linear
from ._faults import NonFiniteLossError
from ._precision import auto_device, flush_denormal
from ._stacked import StackedAdam, StackedVAE
from ._sweep_data import first_batch, member_batches, val_batches
from ._sweep_files import (
    Stopper,
    log_step,
    member_checkpoint,
    resume_members,
    write_checkpoint,
    write_hparams,
)

__all__ = ["Sweep", "SweepMember"]


@dataclass(frozen=True)
class SweepMember:
    r"""One member of a :class:`Sweep`: what a :class:`~torchvae.Trainer` run would be given.

    Attributes:
        seed: seeds the member's data order and noise (as ``Trainer(seed=)``); build its
            model after ``torch.manual_seed(seed)`` to match a Trainer run whose weights
            follow the seed too.
        beta: the KL weight :math:`\beta` (``ELBOLoss(beta=)``).
        lr: Adam's learning rate.
        free_bits: nats per latent dimension (``ELBOLoss(free_bits=)``).
        warmup_steps: linear warm-up of :math:`\beta` from 0 over this many steps
            (``BetaSchedule(Linear(steps, end=beta))``); 0 for none.
        folder: the member's run folder (``checkpoints/``, ``tensorboard/``); ``None``
            writes nothing.
        info: JSON values stored in each checkpoint (the command line's run settings).
    """

    seed: int
    beta: float = 1.0
    lr: float = 1e-3
    free_bits: float = 0.0
    warmup_steps: int = 0
    folder: str | os.PathLike[str] | None = None
    info: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        for name in ("beta", "free_bits", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be finite and {'> 0' if name == 'lr' else '>= 0'}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")


class Sweep:
    r"""Train ``K`` VAEs of one architecture together, weights stacked, in lockstep.

    Every member takes a step on every step of the sweep (until it stops early), with its
    own batch, noise, :math:`\beta`, learning rate and free bits, and Adam (PyTorch's, the
    fused kernel where it exists) on its own moments; its epoch metrics, checkpoints
    (``folder/checkpoints/epoch-NNNN.pt``, in the Trainer's format), early stopping and
    TensorBoard run (``folder/tensorboard``) are its own. What a sweep can stack is checked
    first: plain :class:`~torchvae.VAE` models with the diagonal Gaussian posterior, a
    prior without parameters with a closed-form KL (the standard normal), any likelihood,
    MLP or convolutional networks without buffers or random layers; anything else is
    refused with a ``ValueError`` naming it.

    Args:
        models: one model per member, same architecture; their weights are copied in
            (read them back with :meth:`model`).
        members: one :class:`SweepMember` each.
        batch_size: examples per step, shared (for data given as a tensor).
        device: ``"auto"`` or a device.
        patience: stop a member after this many epochs without improving ``val_loss``
            (``loss`` without validation data) by more than ``min_delta``; ``None``: never.
        min_delta: see ``patience``.
        keep_last: ``epoch-*.pt`` files kept per member.
        log_every_n_steps: how often per-step scalars go to TensorBoard.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> models = []
        >>> for seed in (0, 1):
        ...     _ = torch.manual_seed(seed)
        ...     models.append(VAE(Encoder(16, 8, 2), Decoder(2, 8, 16)))
        >>> sweep = Sweep(models, [SweepMember(0, beta=0.5), SweepMember(1, beta=2.0)],
        ...               batch_size=32, device="cpu")
        >>> sweep.fit(torch.rand(64, 16), epochs=2)
        >>> [h["epoch"] for h in sweep.metrics]
        [2, 2]
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        members: Sequence[SweepMember],
        *,
        batch_size: int = 128,
        device: str | torch.device = "auto",
        patience: int | None = None,
        min_delta: float = 0.0,
        keep_last: int | None = 3,
        log_every_n_steps: int = 50,
    ) -> None:
        if len(models) != len(members):
            raise ValueError(f"got {len(models)} models for {len(members)} members")
        if not all(isinstance(m, SweepMember) for m in members):
            raise TypeError("members must be SweepMember objects")
        self.members = list(members)
        self.device = auto_device(device)
        self.stack = StackedVAE(models).to(self.device)
        self.k = self.stack.k
        self.batch_size, self.keep_last = batch_size, keep_last
        self.log_every_n_steps = log_every_n_steps
        self.stoppers = [Stopper(patience, min_delta) for _ in members]
        self.epochs_done = [0] * self.k
        self.global_step = 0
        self.history: list[list[dict[str, float]]] = [[] for _ in members]
        self.metrics: list[dict[str, float]] = [{} for _ in members]
        self.gens = [torch.Generator().manual_seed(m.seed) for m in members]
        on_cpu = self.device.type == "cpu"
        self.dev_gens = (
            self.gens
            if on_cpu
            else [torch.Generator(self.device).manual_seed(m.seed) for m in members]
        )
        self._stop_step = [0] * self.k  # the step at which each member stopped
        self._on_step: Callable[[int, Tensor], None] | None = None
        self._ready = False
        self._writers: list[Any] = [None] * self.k

    # --- the state --------------------------------------------------------------------

    def _prepare(self, x: Tensor) -> None:
        if self._ready:
            return
        self.stack.relayout(x)
        for p in self.stack.params.values():
            p.requires_grad_(True)
        self.adam = StackedAdam(self.stack.params, [m.lr for m in self.members], (0.9, 0.999))
        self._ready = True

    @property
    def active(self) -> list[int]:
        """The members still training (not stopped early)."""
        return [i for i, s in enumerate(self.stoppers) if s.stopped_epoch == 0]

    def member_state(self, i: int) -> dict[str, Any]:
        """Member ``i``'s checkpoint: what a :class:`~torchvae.Trainer` checkpoint holds (so
        that a Trainer can continue it: weights, Adam's state, step counts, random state)."""
        return member_checkpoint(self, i)

    def model(self, i: int) -> nn.Module:
        """Member ``i``'s model, with its current weights (a new module, on the CPU)."""
        import copy

        model = copy.deepcopy(self.stack.template).cpu()
        model.load_state_dict({k: v.cpu() for k, v in self.stack.member_state(i).items()})
        return model

    def folder(self, i: int) -> Path | None:
        """Member ``i``'s run folder (``None``: it writes no files)."""
        folder = self.members[i].folder
        return None if folder is None else Path(folder)

    # --- the loop ---------------------------------------------------------------------

    def fit(
        self,
        train: Any,
        val: Any = None,
        epochs: int = 1,
        resume: bool = False,
        on_step: Callable[[int, Tensor], None] | None = None,
    ) -> None:
        """Train every member until ``epochs`` epochs are done (or it stops early).

        Args:
            train: a Tensor of examples (each member shuffles it with its own generator,
                as the Trainer does), a sequence of ``K`` loaders (one per member, e.g.
                :class:`~torchvae.data.TensorLoader` with each member's seed), or one
                loader shared by all.
            val: validation data (a Tensor or a loader), the same for all members.
            epochs: the total number of epochs, counting those done before a resume.
            resume: continue from each member's newest checkpoint in its folder.
            on_step: called after each step with the step number and the members'
                losses, ``(K,)`` (those of stopped members are meaningless).

        Raises:
            NonFiniteLossError: a member's loss or gradient is NaN/inf (it is named).
            ValueError: bad data, or checkpoints that do not fit.
        """
        self._on_step = on_step
        self._prepare(first_batch(train, self))
        if resume:
            resume_members(self)
        try:
            with flush_denormal(self.device.type == "cpu"):
                while self.active and min(self.epochs_done[i] for i in self.active) < epochs:
                    self._run_epoch(train, val, epochs)
            write_hparams(self)
        finally:
            for w in self._writers:
                if w is not None:
                    w.close()
            self._writers = [None] * self.k

    def _betas(self) -> Tensor:
        values = [
            Linear(steps=m.warmup_steps, end=m.beta)(self.global_step)
            if m.warmup_steps > 0
            else m.beta
            for m in self.members
        ]
        return torch.tensor(values, device=self.device)

    def _run_epoch(self, train: Any, val: Any, epochs: int) -> None:
        active, start, steps0 = self.active, time.perf_counter(), self.global_step
        epoch = self.epochs_done[active[0]]
        sums = torch.zeros(self.k, 3, device=self.device)
        free_bits = torch.tensor([m.free_bits for m in self.members], device=self.device)
        params = self.stack.params
        n_seen = 0
        for x, check in member_batches(train, self, epoch, active):
            b = x.shape[1]
            eps = torch.zeros(self.k, b, self.stack.latent_dim, device=self.device)
            for i in active:
                torch.randn((b, self.stack.latent_dim), generator=self.dev_gens[i], out=eps[i])
            beta = self._betas()
            total, rec, kl, _ = self.stack.losses(params, x, eps, beta, free_bits)
            grads = torch.autograd.grad(total.sum(), list(params.values()))
            norms = torch.stack(
                [
                    g.abs()
                    if g.ndim == 1
                    else torch.linalg.vector_norm(g, dim=tuple(range(1, g.ndim)))
                    for g in grads
                ]
            )
            grad_norm = torch.linalg.vector_norm(norms, dim=0)
            finite = torch.isfinite(total) & torch.isfinite(grad_norm)
            ok = finite[active].all()
            if check is not None:
                ok = ok & check
            if not bool(ok):  # the step's one synchronisation
                self._fail(finite, check, epoch, epochs)
            self.adam.step(params, dict(zip(params, grads, strict=True)), active)
            sums.add_(torch.stack([total, rec, kl], 1).detach(), alpha=b)
            n_seen += b
            self.global_step += 1
            if self._on_step is not None:
                self._on_step(self.global_step, total.detach())
            if (self.global_step - 1) % self.log_every_n_steps == 0:
                log_step(self, active, total, rec, kl, grad_norm, beta)
        if self.global_step == steps0:
            raise ValueError(f"train yielded no batches in epoch {epoch + 1}")
        weights_ok = torch.stack(
            [torch.isfinite(p).reshape(self.k, -1).all(1) for p in params.values()]
        )
        means = (sums / n_seen).tolist()
        vals = self.evaluate(val) if val is not None else None
        for i in active:
            if not bool(weights_ok[:, i].all()):
                raise NonFiniteLossError(
                    f"member {i} (seed {self.members[i].seed}): the weights hold NaN or inf at "
                    f"the end of epoch {epoch + 1} of {epochs}; they were not checkpointed"
                )
            self.epochs_done[i] = epoch + 1
            loss, reconstruction, kl_mean = means[i]
            metrics: dict[str, float] = {
                "epoch": epoch + 1,
                "step": self.global_step,
                "loss": loss,
                "reconstruction": reconstruction,
                "kl": kl_mean,
                "beta": float(beta[i]),
                "lr": self.members[i].lr,
                "skipped_steps": 0,
                "time": time.perf_counter() - start,
            }
            if vals is not None:
                metrics.update({f"val_{k}": v for k, v in vals[i].items()})
            self.metrics[i] = metrics
            self.history[i].append(dict(metrics))
            if self.stoppers[i].update(metrics.get("val_loss", loss), epoch + 1):
                self._stop_step[i] = self.global_step
            write_checkpoint(self, i)

    def _fail(self, finite: Tensor, check: Tensor | None, epoch: int, epochs: int) -> None:
        at = f"epoch {epoch + 1} of {epochs}, step {self.global_step}"
        if check is not None and not bool(check):
            raise ValueError(
                f"a batch at {at} holds values outside the likelihood's support (e.g. NaN, "
                f"or outside [0, 1] for a Bernoulli likelihood)"
            )
        bad = [i for i in self.active if not bool(finite[i])]
        names = ", ".join(f"{i} (seed {self.members[i].seed})" for i in bad)
        raise NonFiniteLossError(
            f"the loss or gradient of member {names} is NaN or inf at {at}; lower its "
            f"learning rate or check the data"
        )

    @torch.no_grad()
    def evaluate(self, data: Any) -> list[dict[str, float]]:
        r"""Each member's ``loss`` (the negative ELBO with :math:`\beta = 1`, no free bits),
        ``reconstruction``, ``kl`` and ``bits_per_dim`` on ``data``, as
        :meth:`Trainer.evaluate <torchvae.Trainer.evaluate>` gives them; each member's
        noise comes from a copy of its generator, which is left as it was."""
        gens = []
        for g in self.dev_gens:
            copy_ = torch.Generator(self.device)
            copy_.set_state(g.get_state())
            gens.append(copy_)
        ones, zeros = (
            torch.ones(self.k, device=self.device),
            torch.zeros(self.k, device=self.device),
        )
        sums = torch.zeros(self.k, 3, dtype=torch.float64, device=self.device)
        n, dims = 0, 1
        params = {name: p.detach() for name, p in self.stack.params.items()}
        for x in val_batches(data, self):
            b = x.shape[0]
            eps = torch.empty(self.k, b, self.stack.latent_dim, device=self.device)
            for i, g in enumerate(gens):
                torch.randn((b, self.stack.latent_dim), generator=g, out=eps[i])
            xs = x.unsqueeze(0).expand(self.k, *x.shape)
            _, rec, kl, _ = self.stack.losses(params, xs, eps, ones, zeros)
            sums += torch.stack([rec + kl, rec, kl], 1).to(torch.float64) * b
            n, dims = n + b, x[0].numel()
        if n == 0:
            raise ValueError("data for evaluate holds no examples")
        out = []
        for loss, rec, kl in (sums / n).tolist():
            out.append(
                {
                    "loss": loss,
                    "reconstruction": rec,
                    "kl": kl,
                    "bits_per_dim": loss / (dims * math.log(2.0)),
                }
            )
        return out
