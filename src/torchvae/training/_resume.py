"""What a resumed run may change, and the checks that refuse the rest.

The rule (documented in the resume guide):

- ``epochs`` is the total and may change freely; a total the checkpoint already reached
  trains nothing, with a :class:`ResumeWarning`.
- The optimizer's numeric hyper-parameters (``lr``, ``weight_decay``, ``betas``, ``eps``,
  ``momentum``, ...) may change: when the optimizer given to the resumed
  :class:`~torchvae.Trainer` was built with another value than the run that wrote the
  checkpoint, the new value is used (and, for ``lr``, becomes the scheduler's base
  learning rate), with a :class:`ResumeWarning`; the optimizer's running state (moments,
  step counts) and the scheduler's position come from the checkpoint. Values left as
  they were are restored exactly, so an unchanged setup resumes bit for bit.
- Other optimizer options (``amsgrad``, ``nesterov``, ``maximize``, ...) shape the
  running state: the checkpoint's are kept, with a :class:`ResumeWarning` when yours
  differ. Implementation switches (``foreach``, ``fused``, ``capturable``,
  ``differentiable``) are yours: they do not change the arithmetic's meaning.
- The architecture (the names and shapes of the model's and the loss's tensors), the
  optimizer's type and its parameter groups cannot change: a
  :class:`~torchvae.CheckpointError` says what differs, before anything is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..io.checkpoint import CheckpointError

__all__ = ["ResumeWarning", "apply_hyperparameters", "check_resumable", "hyperparameters"]

_IMPLEMENTATION = frozenset({"foreach", "fused", "capturable", "differentiable"})
_BOOKKEEPING = frozenset({"params", "initial_lr"})


class ResumeWarning(UserWarning):
    """A resumed run differs from its checkpoint in a way the resume rule allows."""


def _plain(value: object) -> object:
    """A hyper-parameter as plain numbers (a one-element tensor as its float)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _numeric(value: object) -> bool:
    value = _plain(value)
    if isinstance(value, list):
        return bool(value) and all(_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """The options of each parameter group, as built (everything but the parameters)."""
    return [
        {k: v for k, v in group.items() if k not in _BOOKKEEPING}
        for group in optimizer.param_groups
    ]


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, Tensor)}


def _difference(want: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    ours, theirs = _shapes(want), _shapes(got)
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    common = sorted(set(ours) & set(theirs))
    shapes = [f"{k} {theirs[k]} vs {ours[k]}" for k in common if ours[k] != theirs[k]]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensors with other shapes (checkpoint vs now): {_few(shapes)}")
    if missing:
        parts.append(f"{len(missing)} only in the checkpoint: {_few(missing)}")
    if extra:
        parts.append(f"{len(extra)} only in this trainer: {_few(extra)}")
    return "; ".join(parts)


def _few(items: list[str], limit: int = 4) -> str:
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_resumable(
    path: Path,
    state: Mapping[str, Any],
    model_state: Mapping[str, Any],
    loss_state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Raise :class:`~torchvae.CheckpointError` if ``state`` cannot continue this setup.

    Raises:
        CheckpointError: the model's or the loss's tensors, the optimizer's type or its
            parameter groups differ from the checkpoint's; the message says which.
    """
    problems = []
    for what, ours, key in (("model", model_state, "model"), ("loss", loss_state, "loss")):
        saved = state.get(key)
        if isinstance(saved, Mapping):
            difference = _difference(ours, saved)
            if difference:
                problems.append(f"the {what}'s architecture differs ({difference})")
    saved_type = state.get("optimizer_type")
    kind = type(optimizer).__qualname__
    saved_opt = state.get("optimizer")
    groups = saved_opt.get("param_groups") if isinstance(saved_opt, Mapping) else None
    if isinstance(saved_type, str) and saved_type != kind:
        problems.append(f"the checkpoint's optimizer is {saved_type}, this trainer's is {kind}")
    elif isinstance(groups, list):
        if len(groups) != len(optimizer.param_groups):
            problems.append(
                f"the checkpoint's optimizer has {len(groups)} parameter groups, this "
                f"trainer's has {len(optimizer.param_groups)}"
            )
        else:
            for i, (theirs, ours_g) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
                a = set(theirs) - _BOOKKEEPING - _IMPLEMENTATION
                b = set(ours_g) - _BOOKKEEPING - _IMPLEMENTATION
                if a != b:
                    problems.append(
                        f"the checkpoint's optimizer has other options ({', '.join(sorted(a - b))}"
                        f" only in the checkpoint; {', '.join(sorted(b - a)) or 'none'} only "
                        f"now): another optimizer type, this trainer's is {kind}"
                    )
                    break
                if len(theirs["params"]) != len(ours_g["params"]):
                    problems.append(
                        f"parameter group {i} has {len(theirs['params'])} tensors in the "
                        f"checkpoint and {len(ours_g['params'])} now"
                    )
    if problems:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: {'; '.join(problems)}. Build the trainer as "
            f"the run that wrote it (same architecture and optimizer type; the learning rate "
            f"and epochs may change), or start a new run",
            path,
            recognized=True,
        )


def apply_hyperparameters(
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    given: list[dict[str, Any]],
    saved_given: object,
) -> list[str]:
    """After the optimizer's state was restored, apply the rule to its hyper-parameters.

    Args:
        optimizer: restored from the checkpoint.
        scheduler: the trainer's scheduler (restored too), or ``None``.
        given: :func:`hyperparameters` of the optimizer as the resumed trainer got it.
        saved_given: the same, as the run that wrote the checkpoint got it (``None`` for
            checkpoints written before it was recorded).

    Returns:
        One line per change, for the :class:`ResumeWarning`.
    """
    changes: list[str] = []
    known = (
        saved_given if isinstance(saved_given, list) and len(saved_given) == len(given) else None
    )
    for i, (group, mine) in enumerate(zip(optimizer.param_groups, given, strict=True)):
        before = known[i] if known is not None else None
        for key, value in mine.items():
            if key in _IMPLEMENTATION:
                group[key] = value
                continue
            if key not in group:
                continue
            name = f"{key}" if len(given) == 1 else f"{key} (group {i})"
            if before is None:  # no record of the old run's choice: the checkpoint's stays
                if not _same(group[key], value):
                    changes.append(
                        f"{name}: the checkpoint's {_plain(group[key])} is kept (it predates "
                        f"the record of the values a run was built with), not {_plain(value)}"
                    )
                continue
            if key not in before or _same(before[key], value):
                continue
            if not _numeric(value):
                changes.append(
                    f"{name}: the checkpoint's {_plain(group[key])} is kept, not "
                    f"{_plain(value)} (it shapes the optimizer's saved state)"
                )
                continue
            changes.append(
                f"{name}: {_plain(before[key])} in the checkpoint's run, now {_plain(value)}"
            )
            group[key] = value
            if key == "lr":
                if "initial_lr" in group:
                    group["initial_lr"] = value
                base = getattr(scheduler, "base_lrs", None)
                if isinstance(base, list) and i < len(base):
                    base[i] = _plain(value)
                last = getattr(scheduler, "_last_lr", None)
                if isinstance(last, list) and i < len(last):
                    last[i] = _plain(value)
    return changes
