"""What the Trainer accepts as data, turned into an iterable of batches.

A Tensor or ``TensorDataset`` is batched by indexing (no per-example Python work); any
other map-style ``Dataset`` goes through a ``DataLoader``; DataLoaders, a
:class:`~torchvae.data.TensorLoader` and other iterables of batches are used as given.
Under DDP each rank gets its share (see :func:`as_batches`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    TensorDataset,
)

from ..data.loader import TensorLoader
from ..data.streaming import StreamLoader

__all__ = [
    "TensorBatches",
    "as_batches",
    "check_dequantized",
    "is_dequantized",
    "shard_loader",
    "unpack",
]


class TensorBatches:
    """Mini-batches of in-memory tensors by indexing.

    With ``world_size > 1`` this rank gets every ``world_size``-th example of the epoch's
    order; for training (``pad=True``) the order is wrapped around so that every rank has
    the same number of batches, and the shuffle comes from ``seed + epoch`` alone (the
    ranks' global generators differ), as with ``DistributedSampler``.
    """

    def __init__(
        self,
        tensors: Sequence[Tensor],
        batch_size: int,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        pad: bool = True,
    ) -> None:
        if len({t.shape[0] for t in tensors}) != 1:
            raise ValueError(
                f"tensors must have the same length, got {[t.shape[0] for t in tensors]}"
            )
        self.tensors, self.batch_size, self.shuffle = tuple(tensors), batch_size, shuffle
        self.rank, self.world_size, self.seed, self.pad = rank, world_size, seed, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _num_samples(self) -> int:
        n = self.tensors[0].shape[0]
        if self.world_size == 1:
            return n
        if self.pad:
            return math.ceil(n / self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self._num_samples() / self.batch_size)

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, ...]]:
        n, device = self.tensors[0].shape[0], self.tensors[0].device
        order: Tensor | None
        if self.world_size == 1:
            # drawn from the global CPU generator, whose state checkpoints save and restore
            order = torch.randperm(n).to(device) if self.shuffle else None
        else:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
            total = self._num_samples() * self.world_size if self.pad else n
            order = order.repeat(math.ceil(total / n))[:total]
            order = order[self.rank : total : self.world_size].to(device)
        for start in range(0, self._num_samples(), self.batch_size):
            if order is None:
                parts = [t[start : start + self.batch_size] for t in self.tensors]
            else:
                parts = [t[order[start : start + self.batch_size]] for t in self.tensors]
            yield parts[0] if len(parts) == 1 else tuple(parts)


def as_batches(
    data: Any,
    batch_size: int,
    train: bool,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
) -> Iterable[Any]:
    """``data`` as an iterable of batches; with ``world_size > 1``, this rank's share.

    Raises:
        TypeError: ``data`` is none of the accepted forms.
    """
    if isinstance(data, (Tensor, TensorDataset)):
        tensors = (data,) if isinstance(data, Tensor) else data.tensors
        return TensorBatches(tensors, batch_size, train, rank, world_size, seed, pad=train)
    if world_size > 1:
        return shard_loader(data, batch_size, train, rank, world_size, seed)
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        return DataLoader(data, batch_size=batch_size, shuffle=train)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        return data
    raise TypeError(
        f"data must be a Tensor, a Dataset, a DataLoader or an iterable of batches, "
        f"got {type(data).__name__}"
    )


def unpack(batch: Any, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Split a batch into ``(x, y)`` (``y`` may be ``None``) on ``device``.

    Raises:
        TypeError: the batch is not ``x`` or ``(x, y)``, or ``x`` is not floating point.
        ValueError: ``x`` is a meta tensor.
    """
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
    if x.device.type == "meta":
        raise ValueError("batch x is a meta tensor, which holds no values to train on")
    x = x.to(device, non_blocking=True)
    return x, (y.to(device, non_blocking=True) if isinstance(y, Tensor) else y)


def shard_loader(
    data: Any, batch_size: int, train: bool, rank: int, world_size: int, seed: int
) -> Iterable[Any]:
    """This rank's share of a TensorLoader, Dataset or DataLoader; other iterables as given.

    A :class:`~torchvae.data.TensorLoader` or :class:`~torchvae.data.StreamLoader`
    gets ``rank`` and ``world_size`` (unless it has them); a ``Dataset`` or ``DataLoader``
    gets a ``DistributedSampler`` for training (shuffled from ``seed`` if the loader
    shuffles) and every ``world_size``-th example, unpadded, for evaluation.

    Raises:
        ValueError: a TensorLoader built for another rank, or a DataLoader the trainer
            cannot split (a custom batch sampler, an iterable dataset).
    """
    if isinstance(data, (TensorLoader, StreamLoader)):
        if data.world_size == 1:
            data.rank, data.world_size = rank, world_size
        elif (data.rank, data.world_size) != (rank, world_size):
            raise ValueError(
                f"the {type(data).__name__} was built for rank {data.rank} of "
                f"{data.world_size}, but this process is rank {rank} of {world_size}"
            )
        return data
    loader: DataLoader[Any] | None = data if isinstance(data, DataLoader) else None
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=train)
    if loader is None or isinstance(loader.sampler, DistributedSampler):
        return data if loader is None else loader
    if loader.batch_size is None or isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            "under DDP, a DataLoader with a custom batch_sampler or an IterableDataset "
            "cannot be split by the trainer; give it a DistributedSampler yourself"
        )
    dataset: Any = loader.dataset
    sampler: Iterable[int] = (
        DistributedSampler(
            dataset,
            num_replicas=world_size,
            rank=rank,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
            drop_last=loader.drop_last,
        )
        if train
        else range(rank, len(dataset), world_size)
    )
    return DataLoader(
        dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )


def is_dequantized(data: object) -> bool:
    """Whether ``data`` yields uniformly dequantized batches (a loader's ``dequantize``)."""
    return getattr(data, "dequantize", False) is True


def check_dequantized(likelihood: object, data: object) -> None:
    """Refuse dequantized batches for a likelihood of discrete values.

    A discrete likelihood (``likelihood.discrete``) scores the 8-bit values themselves,
    ``x / 255``; dequantized batches :math:`(x + u) / 256` are off its grid of values.

    Raises:
        ValueError: ``data`` is dequantized and ``likelihood`` is discrete.
    """
    if is_dequantized(data) and getattr(likelihood, "discrete", False):
        raise ValueError(
            f"the data are dequantized (dequantize=True), but {type(likelihood).__name__} is "
            f"a likelihood of discrete values: give it the 8-bit values x / 255 "
            f"(dequantize=False), or use a density such as Gaussian on dequantized data"
        )
