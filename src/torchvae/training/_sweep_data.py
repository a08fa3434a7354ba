"""The batches of a sweep: each member's batch of a step, stacked into ``(K, batch, ...)``.

A member sees the batches that a :class:`~torchvae.Trainer` run with its seed would see:
a tensor is shuffled each epoch with the member's own generator (where the Trainer draws
from the global one it seeded), and loaders get ``set_epoch(epoch)`` before each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ._batches import unpack

if TYPE_CHECKING:
    from .sweep import Sweep

__all__ = ["first_batch", "member_batches", "val_batches"]


def _set_epoch(loader: Any, epoch: int) -> None:
    for owner in (loader, getattr(loader, "sampler", None)):
        if callable(set_epoch := getattr(owner, "set_epoch", None)):
            set_epoch(epoch)


def _floating(data: Tensor, name: str) -> Tensor:
    if not data.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {data.dtype}")
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(data.shape)}")
    return data


def _loaders(train: Any, k: int) -> list[Any] | None:
    """The per-member loaders of ``train``, or ``None`` for a tensor."""
    if isinstance(train, Tensor):
        return None
    if isinstance(train, (list, tuple)):
        if len(train) != k or any(isinstance(t, Tensor) for t in train):
            raise ValueError(
                f"train as a sequence must hold one loader per member ({k}), got {len(train)} items"
            )
        return list(train)
    if isinstance(train, (DataLoader,)) or hasattr(train, "__iter__"):
        return [train] * k
    raise TypeError(f"train must be a Tensor or loaders, got {type(train).__name__}")


def first_batch(train: Any, sweep: Sweep) -> Tensor:
    """A ``(K, batch, ...)`` batch of the data's first rows, drawing nothing random."""
    loaders = _loaders(train, sweep.k)
    if loaders is None:
        x = _floating(train, "train")[: sweep.batch_size].to(sweep.device)
    else:
        batch = next(iter(loaders[0]), None)
        if batch is None:
            raise ValueError("train yielded no batches")
        x = unpack(batch, sweep.device)[0]
    return x.unsqueeze(0).expand(sweep.k, *x.shape).contiguous()


def member_batches(
    train: Any, sweep: Sweep, epoch: int, active: Sequence[int]
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``(x, check)`` for each step of ``epoch``: ``x`` is ``(K, batch, ...)``; ``check`` a
    boolean tensor that the batches are valid data for the likelihood (``None``: valid by
    construction). Members not in ``active`` get a copy of an active member's batch."""
    likelihood = sweep.stack.template.likelihood
    loaders = _loaders(train, sweep.k)
    if loaders is None:
        data = _floating(train, "train").to(sweep.device)
        n = data.shape[0]
        drawn = {i: torch.randperm(n, generator=sweep.gens[i]).to(sweep.device) for i in active}
        order = torch.stack([drawn.get(i, drawn[active[0]]) for i in range(sweep.k)])
        for start in range(0, n, sweep.batch_size):
            x = data[order[:, start : start + sweep.batch_size]]
            yield x, likelihood.target_ok(x)
        return
    unique: list[Any] = []  # a loader shared by members is iterated once per epoch
    slot = []
    for loader in loaders:
        found = next((j for j, u in enumerate(unique) if u is loader), None)
        if found is None:
            unique.append(loader)
            found = len(unique) - 1
        slot.append(found)
    for loader in unique:
        _set_epoch(loader, epoch)
    trusted = all(getattr(loader, "in_unit_interval", False) for loader in unique)
    rows = [slot[i] if i in active else slot[active[0]] for i in range(sweep.k)]
    for batches in zip(*(iter(loader) for loader in unique), strict=False):
        xs = [unpack(batch, sweep.device)[0] for batch in batches]
        if len(unique) == 1:
            x = xs[0].unsqueeze(0).expand(sweep.k, *xs[0].shape)
        else:
            if len({tuple(t.shape) for t in xs}) != 1:
                raise ValueError(
                    f"the members' loaders gave batches of different shapes "
                    f"{sorted({tuple(t.shape) for t in xs})}; a sweep steps them together"
                )
            x = torch.stack([xs[j] for j in rows])
        yield x, None if trusted else likelihood.target_ok(x)


def val_batches(data: Any, sweep: Sweep) -> Iterator[Tensor]:
    """Validation batches ``(batch, ...)``, in order, the same for every member."""
    if isinstance(data, Tensor):
        data = _floating(data, "val").to(sweep.device)
        for start in range(0, data.shape[0], sweep.batch_size):
            yield data[start : start + sweep.batch_size]
        return
    for batch in data:
        yield unpack(batch, sweep.device)[0]
