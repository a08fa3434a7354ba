"""The training step without host synchronisation, and captured as one CUDA graph.

On a GPU a small model's step is bound by kernel launches, not arithmetic: the MLP
784-400-20 at batch 128 launches about a hundred small kernels per step. Where it is safe
(see :func:`graph_blocker`), the Trainer records the whole step (forward, loss, backward,
gradient norm, the finiteness flag and the fused Adam update) once as a CUDA graph and
replays it for every batch of the same shape: one launch per step. The checks stay
outside the graph: the step computes one flag on the device, fused Adam skips its own
update when the flag says the values were not finite (``found_inf``, as under float16
gradient scaling), and the Trainer reads the flag after the replay, as the eager step does
before its update, so that ``nan_policy`` behaves the same.

What is not captured runs eagerly, with the same arithmetic: the first few steps (lazy
initialisation of the optimizer's state and of the libraries), a batch of another shape
(the last, smaller batch of an epoch), and every step of a trainer that cannot be captured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._validation import trusted_inputs
from ..models._labels import labels_ok
from ..objectives.losses import LossOutput

__all__ = ["GraphStep", "StepValues", "graph_blocker", "step_gradients"]

# Eager steps of the static shape before the capture: the optimizer's state and the
# libraries' workspaces are made lazily, on the first steps, and must exist before it.
WARMUP_STEPS = 3
# Captures per fit (a changed learning rate or beta needs a new one): more means the
# hyper-parameters change every few steps, which a graph cannot follow cheaply.
MAX_CAPTURES = 8

_SCALARS = (bool, int, float, str)


class StepValues(NamedTuple):
    """What a step gives the loop: the losses, the gradient norm and the finiteness flag."""

    losses: LossOutput
    grad_norm: Tensor
    finite: Tensor


def total_norm(params: list[Tensor], clip: float | None) -> Tensor:
    """The gradients' total 2-norm, clipping them to ``clip`` first when given."""
    if clip is not None:
        return nn.utils.clip_grad_norm_(params, clip)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    norm: Tensor = torch.linalg.vector_norm(torch.stack(norms) if len(norms) > 1 else norms[0])
    return norm


def step_gradients(
    trainer: Any, x: Tensor, y: Tensor | None, params: list[Tensor], check_values: bool
) -> StepValues:
    """Forward, loss and backward of one step, with its one finiteness flag (no sync).

    The flag covers the loss (and the auxiliary losses), the data (where ``check_values``),
    the labels of a conditional model and, without float16 scaling, the gradient norm.
    Out-of-range labels would fail deep in the embedding: the step runs on clamped ones,
    and the flag names the batch instead.
    """
    num_classes, ok_labels, y_in = trainer._num_classes, None, y
    if num_classes is not None and isinstance(y, Tensor) and not y.is_floating_point():
        ok_labels, y_in = labels_ok(y, num_classes), y.clamp(0, num_classes - 1)
    with trusted_inputs():  # value checks are folded into the step's one flag
        _, losses = trainer._compute(x, y_in)
    precision = trainer.precision_plugin
    precision.backward(losses.total)
    precision.unscale(trainer.optimizer)
    grad_norm = total_norm(params, trainer.grad_clip)
    finite = torch.isfinite(losses.total)
    for extra in (losses.aux or {}).values():
        finite = finite & torch.isfinite(extra)
    if check_values:
        likelihood = trainer._likelihood
        finite = finite & (
            likelihood.target_ok(x) if likelihood is not None else torch.isfinite(x).all()
        )
    if ok_labels is not None:
        finite = finite & ok_labels
    if not precision.skips_inf_itself:
        finite = finite & torch.isfinite(grad_norm)
    return StepValues(losses, grad_norm, finite)


def _fused_adam(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` is torch's fused Adam/AdamW, which can skip its own update."""
    return (
        type(optimizer) in (torch.optim.Adam, torch.optim.AdamW)
        and all(g.get("fused") and not g.get("differentiable") for g in optimizer.param_groups)
        and not any(isinstance(g["lr"], Tensor) for g in optimizer.param_groups)
    )


def graph_blocker(trainer: Any) -> str | None:
    """Why this trainer's step cannot be captured as a CUDA graph; ``None`` when it can."""
    optimizer = trainer.optimizer
    hooks = [
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
    ]
    reasons: list[tuple[bool, str]] = [
        (not trainer.cuda_graph, "cuda_graph=False"),
        (trainer.device.type != "cuda", f"the device is {trainer.device.type}, not CUDA"),
        (trainer.precision_plugin.skips_inf_itself, "float16 scaling decides on the host"),
        (trainer.processes.enabled, "DDP synchronises gradients between processes"),
        (trainer.compiled, "compile=True (torch.compile makes its own graphs)"),
        (bool(trainer.aux_optimizers), "the objective has auxiliary optimizers"),
        (
            trainer.scheduler is not None and trainer.scheduler_interval == "step",
            "the learning rate changes every step",
        ),
        (not _fused_adam(optimizer), "the optimizer is not torch's fused Adam/AdamW"),
        (any(hooks), "the optimizer has step hooks"),
    ]
    return next((why for blocked, why in reasons if blocked), None)


def _settings(trainer: Any) -> tuple[Any, ...]:
    """What a captured graph holds as constants: the optimizer's and the modules' scalars."""
    groups = tuple(
        tuple((k, v) for k, v in sorted(g.items()) if isinstance(v, (*_SCALARS, tuple)))
        for g in trainer.optimizer.param_groups
    )
    owners = (trainer.loss, trainer.model)
    scalars = tuple(
        tuple((k, v) for k, v in sorted(vars(o).items()) if isinstance(v, _SCALARS)) for o in owners
    )
    return groups, scalars, trainer.grad_clip


def _signature(x: Tensor, y: Tensor | None, check_values: bool) -> tuple[Any, ...]:
    def of(t: Tensor | None) -> tuple[Any, ...] | None:
        return None if t is None else (tuple(t.shape), t.dtype, t.device, t.requires_grad)

    return of(x), of(y), check_values


class GraphStep:
    """One fit's captured step: :meth:`run` replays it, or says the batch runs eagerly.

    Args:
        trainer: the Trainer (its optimizer, loss, precision and settings).
        params: the parameters the optimizer updates.
        capture: record a CUDA graph (``False`` runs the same graph-ready step eagerly,
            without synchronising: what the tests check on a machine without a GPU).
    """

    def __init__(self, trainer: Any, params: list[Tensor], capture: bool = True) -> None:
        self.trainer, self.params, self.capture = trainer, params, capture
        self.reason: str | None = graph_blocker(trainer) if capture else None
        self.signature: tuple[Any, ...] | None = None
        self.settings: tuple[Any, ...] | None = None
        self.graph: Any = None
        self.static: tuple[Tensor, Tensor | None] | None = None
        self.out: StepValues | None = None
        self.grads: list[Tensor | None] = []
        self.warm = self.captures = self.replays = 0

    @property
    def status(self) -> str:
        """``"captured"`` once a graph ran, else ``"eager: <why>"``."""
        if self.reason is not None:
            return f"eager: {self.reason}"
        return "captured" if self.replays else "eager: not captured yet"

    def run(self, x: Tensor, y: Tensor | None, check_values: bool) -> StepValues | None:
        """The step for ``(x, y)`` with the optimizer's update done (skipped when the flag
        says not finite); ``None`` when this batch must run eagerly."""
        if self.reason is not None:
            return None
        signature = _signature(x, y, check_values)
        if self.signature is None:
            self.signature = signature  # the first batch's shape is the graph's
        if signature != self.signature:
            return None  # e.g. the last, smaller batch
        if self.warm < WARMUP_STEPS and self.capture:
            self.warm += 1
            return None
        if not self.capture:
            return self._eager(x, y, check_values)
        settings = _settings(self.trainer)
        if self.graph is None or settings != self.settings:
            if self.captures >= MAX_CAPTURES:
                self._give_up(f"the step's settings changed more than {MAX_CAPTURES} times")
                return None
            try:
                self._record(x, y, check_values)
            except Exception as e:  # a model that synchronises or branches on values
                self._give_up(f"the step could not be captured ({type(e).__name__}: {e})")
                return None
            self.settings = settings
        assert self.static is not None and self.out is not None
        self.static[0].copy_(x)
        if y is not None and self.static[1] is not None:
            self.static[1].copy_(y)
        self.graph.replay()
        self.replays += 1
        for p, g in zip(self.params, self.grads, strict=True):
            p.grad = g  # the graph's gradients, as an eager step leaves them
        out = self.out
        if self.trainer._hooks["on_train_batch_end"]:  # callbacks may keep what they see
            return StepValues(_clone(out.losses), out.grad_norm.clone(), out.finite)
        return out

    def _give_up(self, reason: str) -> None:
        self.reason, self.graph, self.static, self.out, self.grads = reason, None, None, None, []

    def _update(self, values: StepValues) -> StepValues:
        optimizer = self.trainer.optimizer
        optimizer.found_inf = (~values.finite).to(torch.float32)
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
        return values

    def _eager(self, x: Tensor, y: Tensor | None, check_values: bool) -> StepValues:
        self.trainer.optimizer.zero_grad(set_to_none=True)
        out = self._update(step_gradients(self.trainer, x, y, self.params, check_values))
        self.replays += 1
        return out

    def _record(self, x: Tensor, y: Tensor | None, check_values: bool) -> None:
        trainer, optimizer = self.trainer, self.trainer.optimizer
        self.graph = self.out = None
        static = (x.clone(), None if y is None else y.clone())
        optimizer.zero_grad(set_to_none=True)  # the graph makes the gradients in its pool
        groups = optimizer.param_groups
        capturable = [g["capturable"] for g in groups]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(trainer.device)
        try:
            for g in groups:
                g["capturable"] = True  # read only by the capture's health check
            with torch.cuda.graph(graph):
                out = self._update(step_gradients(trainer, *static, self.params, check_values))
        finally:
            for g, c in zip(groups, capturable, strict=True):
                g["capturable"] = c
        self.graph, self.static, self.out = graph, static, out
        self.grads = [p.grad for p in self.params]
        self.captures += 1


def _clone(losses: LossOutput) -> LossOutput:
    copy: Callable[[Tensor | None], Any] = lambda t: None if t is None else t.clone()  # noqa: E731
    terms = None if losses.terms is None else {k: v.clone() for k, v in losses.terms.items()}
    return losses._replace(
        total=copy(losses.total),
        reconstruction=copy(losses.reconstruction),
        kl=copy(losses.kl),
        kl_per_dim=copy(losses.kl_per_dim),
        terms=terms,
    )
