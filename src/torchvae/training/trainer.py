r"""The training loop: :class:`Trainer` fits a model and evaluates it.

The loop (:meth:`Trainer.fit`, one epoch, one step, :meth:`Trainer.evaluate`) is all this
module holds; the device and precision (:mod:`._precision`), the processes of a DDP run
(:mod:`._distributed`), what goes wrong (:mod:`._faults`), the optimizers
(:mod:`._optimizers`) and the state a checkpoint holds (:mod:`._state`) are parts it calls,
and everything optional (logging, checkpoints, early stopping, progress, :math:`\beta`
schedules) hangs off it as callbacks, called only for the hooks they define.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sized
from typing import Any

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..callbacks import StepOutput
from ..io.checkpoint import get_rng_state, set_rng_state
from ..objectives.importance import bits_per_dim
from ..objectives.losses import ELBOLoss, LossOutput
from . import _faults
from ._batches import is_dequantized, unpack
from ._faults import NonFiniteLossError
from ._graphs import GraphStep, step_gradients
from ._precision import flush_denormal
from ._resume import ResumeWarning
from ._setup import TrainerSetup

__all__ = ["NonFiniteLossError", "ResumeWarning", "StepOutput", "Trainer"]


class Trainer(TrainerSetup):
    r"""Fits a VAE: the loop, mixed precision, clipping, NaN handling, checkpoints, resume.

    Args:
        model: a :class:`~torchvae.VAE` or any module whose ``forward(x)`` returns a
            :class:`~torchvae.VAEOutput`; a conditional one (``is_conditional``) is called
            as ``model(x, y=y)``, and its batches must carry labels.
        loss: the objective; default :class:`~torchvae.ELBOLoss`. When it has
            ``n_samples`` (e.g. :class:`~torchvae.IWAELoss`) the model is called with it.
            An objective with losses for other parameter groups (``LossOutput.aux``,
            named by ``loss.aux_parameters()``) gets an optimizer per group, stepped after
            the main one on each step (one process only).
        optimizer: default Adam (lr 1e-3, PyTorch's fused kernel on CPU and CUDA) over the
            model's and the loss's parameters, but the loss's auxiliary groups.
        scheduler: a learning-rate scheduler, stepped each epoch (or step, with
            ``scheduler_interval="step"``); ``ReduceLROnPlateau`` gets ``val_loss`` (or
            ``loss``).
        scheduler_interval: ``"epoch"`` or ``"step"``.
        callbacks: :class:`~torchvae.callbacks.Callback` objects.
        device: ``"auto"`` (cuda, then mps, then cpu) or a device.
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"16-mixed"`` (float16 with
            gradient scaling, CUDA only).
        grad_clip: clip the total gradient 2-norm to this value.
        seed: seed every global generator when :meth:`fit` starts (a resume restores the
            saved states instead); under DDP rank ``r`` seeds with ``seed + r``.
        compile: run the forward pass and the loss through :func:`torch.compile`.
        nan_policy: on a NaN/inf loss or gradient norm, ``"raise"`` a
            :class:`NonFiniteLossError` or ``"skip"`` the step (counted in
            ``skipped_steps``); an epoch of only skipped steps, or
            ``max_consecutive_skips`` in a row, raises too. NaN/inf *weights* stop the run
            under either policy, before any checkpoint is written.
        batch_size: batch size for data given as tensors or datasets (per process).
        log_every_n_steps: how often callbacks log per-step metrics.
        strategy: ``"auto"`` (DDP under ``torchrun``, see the distributed guide),
            ``"ddp"`` (required) or ``"none"``.
        flush_denormal: treat floats below :math:`1.2 \cdot 10^{-38}` as zero on the CPU
            while :meth:`fit` runs (Adam's moments of dead units decay through that
            range, where x86 arithmetic is slow); the previous mode is restored after.
        max_consecutive_skips: see ``nan_policy``.
        optimizers: optimizers for the loss's auxiliary groups, by name (default Adam).
        cuda_graph: on CUDA, record the whole step (forward, loss, backward, gradient
            norm, the finiteness flag and the optimizer's update) once as a CUDA graph and
            replay it for every batch of the first batch's shape, where that is safe: the
            default fused Adam (or AdamW), no float16 scaling, DDP, ``compile``, per-step
            scheduler or auxiliary optimizers. The first steps, batches of another shape
            and every step elsewhere run eagerly, with the same arithmetic; a new learning
            rate or ``beta`` is recorded anew. The forward pass's Python runs only while it
            is recorded: for a model with per-call Python side effects, pass ``False``.
            :attr:`cuda_graph_status` says how the last fit ran.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 2), Decoder(2, 8, 16))
        >>> trainer = Trainer(model, device="cpu", seed=0, batch_size=32)
        >>> trainer.fit(torch.rand(64, 16), epochs=2)
        >>> sorted(trainer.evaluate(torch.rand(32, 16)))
        ['bits_per_dim', 'kl', 'loss', 'reconstruction']
    """

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
            NonFiniteLossError: see ``nan_policy``; it names the step and the last checkpoint.
            ValueError: an epoch without batches, or bad data (named with its batch).
            CheckpointError: ``resume`` names a damaged file, or one of another
                architecture or optimizer type (see :meth:`load_state_dict`).
            OSError: an output folder is not writable or too full, or a file could not be
                written: it names the file and the last good checkpoint; the state in
                memory is intact (``state_dict()``).

        Warns:
            ResumeWarning: a resume changes what the resume rule lets change, or
                ``epochs`` is not more than the epochs already done.
        """
        epochs = check_positive_int(epochs, "epochs")
        self._resume_or_seed(resume, epochs)
        batches, self.val = self._batches(train, train=True), val
        self.num_batches = len(batches) if isinstance(batches, Sized) else None
        self.should_stop, self.faults.run, steps0 = False, 0, self.global_step
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self._graph = GraphStep(self, params)
        try:
            self._call("on_fit_start")
            if self.is_global_zero:
                _faults.check_disk_space(
                    (self.model, self.loss), self._optimizers(), self._checkpoint_folders()
                )
            self.processes.barrier()
            with flush_denormal(self.flush_denormal and self.device.type == "cpu"):
                while self.epoch < epochs and not self.should_stop:
                    self._run_epoch(batches, epochs)
            self._call("on_fit_end")
        except OSError as e:  # after steps were taken, say what is safe where
            last = _faults.last_good(self.last_checkpoint)
            error = (
                e
                if self.global_step == steps0
                else _faults.write_failed(e, self.global_step, self.epoch, last)
            )
            self._call("on_exception", error)
            if error is e:
                raise
            raise error from e
        except BaseException as e:
            self._call("on_exception", e)
            raise

    def _run_epoch(self, batches: Iterable[Any], epochs: int) -> None:
        for owner in (batches, getattr(batches, "sampler", None)):
            if callable(set_epoch := getattr(owner, "set_epoch", None)):
                set_epoch(self.epoch)
        self.model.train()
        self._call("on_train_epoch_start")
        start, steps0, skipped0 = time.perf_counter(), self.global_step, self.skipped_steps
        sums, n_seen = torch.zeros(3, device=self.device), 0
        terms: dict[str, Tensor] = {}
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # Batches of uint8 images are in [0, 1] by construction: no need to read them.
        check_values = not getattr(batches, "in_unit_interval", False)
        for batch_idx, batch in enumerate(batches):
            x, y = unpack(batch, self.device)
            self._call("on_train_batch_start", x)
            losses, grad_norm, skipped = self._step(x, y, params, check_values, batch_idx, epochs)
            if not skipped:
                sums.add_(
                    torch.stack([losses.total, losses.reconstruction, losses.kl]).detach(),
                    alpha=x.shape[0],
                )
                for name, value in (losses.terms or {}).items():
                    terms[name] = terms.get(name, 0.0) + value.detach() * x.shape[0]
                n_seen += x.shape[0]
            self.global_step += 1
            if self._hooks["on_train_batch_end"]:
                self._call("on_train_batch_end", StepOutput(losses, x, y, grad_norm, skipped))
        last = _faults.last_good(self.last_checkpoint)
        if self.global_step == steps0:
            raise ValueError(
                f"train yielded no batches in epoch {self.epoch + 1}; pass data that can be "
                f"iterated again each epoch (Tensor, Dataset, DataLoader, list), not a generator"
            )
        if not _faults.weights_finite(params):
            raise NonFiniteLossError(
                f"the weights hold NaN or inf at the end of epoch {self.epoch + 1} of {epochs} "
                f"(step {self.global_step}); they were not checkpointed; {last}"
            )
        self.rng_snapshot = rng = get_rng_state()
        self.rng_ranks = self.processes.gather(rng)
        sums, n_seen = self.processes.sum(sums, n_seen)
        if n_seen == 0:  # every step skipped (on every rank): nothing was learnt
            raise NonFiniteLossError(
                f"every step of epoch {self.epoch + 1} of {epochs} ({self.global_step - steps0} "
                f"steps) was skipped for non-finite values (nan_policy='skip'); the epoch was not "
                f"checkpointed; {last}. Lower the learning rate, set grad_clip=, or check the data"
            )
        self._finish_epoch((sums / n_seen).tolist(), terms, n_seen, skipped0, start)
        self.history.append(dict(self.metrics))
        self._call("on_train_epoch_end")
        self.processes.barrier()  # no rank starts the next epoch before rank 0's files exist
        set_rng_state(rng)

    def _step(
        self,
        x: Tensor,
        y: Tensor | None,
        params: list[Tensor],
        check_values: bool,
        batch_idx: int,
        epochs: int,
    ) -> tuple[LossOutput, Tensor, bool]:
        """One optimization step; ``(losses, gradient norm, whether it was skipped)``."""
        graph = self._graph
        values = None if graph is None else graph.run(x, y, check_values)
        stepped = values is not None  # the captured step has done its update (or skipped it)
        if values is None:
            self.optimizer.zero_grad(set_to_none=True)
            try:
                values = step_gradients(self, x, y, params, check_values)
            except ValueError as e:  # the model's own checks; NaN weights are ours to name
                if _faults.weights_finite(params):
                    raise
                at, last = self._where(batch_idx, epochs)
                raise NonFiniteLossError(
                    f"the weights hold NaN or inf at {at} (the model said: {e}); {last}"
                ) from e
        losses, grad_norm, finite = values
        precision = self.precision_plugin
        if not bool(finite):  # the step's one device synchronisation
            at, last = self._where(batch_idx, epochs)
            _faults.check_batch(x, y, self._likelihood, self._num_classes, at)
            if not _faults.weights_finite(params):  # skipping steps cannot clean the weights
                raise NonFiniteLossError(f"the weights hold NaN or inf at {at}; {last}")
            self.optimizer.zero_grad(set_to_none=True)
            self.faults.non_finite(losses.total.detach(), grad_norm, at, last)
            return losses, grad_norm, True
        self.faults.passed()
        if not stepped:
            precision.step(self.optimizer)
            for name, extra in (losses.aux or {}).items():  # computed on detached inputs
                self.aux_optimizers[name].zero_grad(set_to_none=True)
                precision.backward(extra)
                precision.step(self.aux_optimizers[name])
        precision.update()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        return losses, grad_norm, False

    @torch.no_grad()
    def evaluate(self, data: Any, distributed: bool = True) -> dict[str, float]:
        r"""Average the objective over ``data``, in nats per example.

        Under DDP every rank must call it (it all-reduces): each evaluates its share of
        ``data`` and all get the mean over every example.

        Args:
            data: a Tensor of examples, a Dataset, a DataLoader or an iterable of batches.
            distributed: ``False`` evaluates all of ``data`` in this process alone.

        Returns:
            ``loss`` (the negative ELBO, :math:`\text{reconstruction} + \mathrm{KL}` with
            :math:`\beta = 1` and no free bits; the loss's own bound for other losses),
            ``reconstruction``, ``kl``, ``bits_per_dim`` :math:`= \text{loss}/(D \ln 2)`
            with :math:`D` features per example (plus :math:`\log_2 256 = 8` on
            dequantized data, see :func:`~torchvae.bits_per_dim`), and the objective's
            logged ``terms``; each weighted by batch size.

        Raises:
            ValueError: ``data`` holds no examples.
        """
        was_training = self.model.training
        self.model.eval()
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums, n, dims = torch.zeros(3, dtype=dtype, device=self.device), 0, 1
        terms: dict[str, Tensor] = {}
        shard = distributed and self.processes.enabled
        try:
            for batch in self._batches(data, train=False, shard=shard):
                x, y = unpack(batch, self.device)
                _, losses = self._evaluate_fn(x, y)
                elbo = isinstance(self.loss, ELBOLoss)
                total = losses.reconstruction + losses.kl if elbo else losses.total
                sums += (
                    torch.stack([total, losses.reconstruction, losses.kl]).to(dtype) * x.shape[0]
                )
                for name, value in (losses.terms or {}).items():
                    terms[name] = terms.get(name, 0.0) + value.to(dtype) * x.shape[0]
                n, dims = n + x.shape[0], x[0].numel()
        finally:
            self.model.train(was_training)
        if shard:
            sums, n = self.processes.sum(sums, n)
            dims = self.processes.largest(dims if n else 0, self.device)
        if n == 0:
            raise ValueError("data for evaluate holds no examples")
        loss, reconstruction, kl = (sums / n).tolist()
        found = {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": float(
                bits_per_dim(loss, dims, self._likelihood, dequantized=is_dequantized(data))
            ),
        }
        return found | {name: float(total) / n for name, total in terms.items()}
