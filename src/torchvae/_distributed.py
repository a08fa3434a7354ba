"""Distributed data parallel plumbing for the :class:`~torchvae.trainer.Trainer`.

The process group (from ``torchrun``'s environment), the device of each rank, each rank's
share of the data, and the few collective operations the trainer needs once per epoch. The
trainer's documentation says what it does with them.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, RandomSampler

from .data import TensorLoader
from .losses import LossOutput
from .streaming import StreamLoader

__all__ = [
    "ModelAndLoss",
    "all_gather",
    "all_reduce_sums",
    "init_process_group",
    "rank_device",
    "shard_loader",
    "wants_ddp",
]


def wants_ddp(strategy: str) -> bool:
    """Whether to train with DDP: ``"auto"`` when launched (or initialized), ``"ddp"`` always.

    Raises:
        ValueError: ``strategy="ddp"`` without a launcher's environment or a process group.
    """
    if strategy == "none":
        return False
    if dist.is_available() and dist.is_initialized():
        return True
    world = os.environ.get("WORLD_SIZE")
    launched = world is not None and (strategy == "ddp" or int(world) > 1)
    if strategy == "ddp" and not launched:
        raise ValueError(
            "strategy='ddp' needs a launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and "
            "MASTER_PORT (run the script with torchrun) or an initialized process group"
        )
    if launched and not dist.is_available():
        raise RuntimeError("WORLD_SIZE is set but this torch build has no torch.distributed")
    return launched


def rank_device(device: torch.device) -> torch.device:
    """``cuda`` without an index becomes ``cuda:LOCAL_RANK``: one GPU per process."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_process_group(device: torch.device) -> None:
    """Join the launcher's process group (``nccl`` for CUDA, ``gloo`` for CPU) if not yet.

    Raises:
        ValueError: ``device`` is neither CUDA nor CPU.
    """
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # binds the group to this GPU (torch >= 2.3); older versions infer it
        if "device_id" in inspect.signature(dist.init_process_group).parameters:
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("nccl")
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise ValueError(
            f"distributed training runs on cuda (nccl) or cpu (gloo) devices, got {device}"
        )
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """Leave the process group at exit, while the interpreter is still fully alive.

    A Trainer holds its DDP wrapper in a reference cycle; without this collection the
    wrapper, and the gloo work it references, could be freed only during interpreter
    finalization, where gloo can abort the process ("terminate called without an active
    exception") after the script has finished.
    """
    if not dist.is_initialized():
        return
    gc.collect()
    dist.destroy_process_group()


class ModelAndLoss(nn.Module):
    """The model and the loss as one module, so that DDP averages the loss's gradients too."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        forward_loss: Callable[[Tensor, Tensor | None], tuple[Any, LossOutput]],
    ) -> None:
        super().__init__()
        self.model, self.loss, self.forward_loss = model, loss, forward_loss

    def forward(self, x: Tensor, y: Tensor | None) -> tuple[Any, LossOutput]:
        return self.forward_loss(x, y)


def all_reduce_sums(sums: Tensor, n: int) -> tuple[Tensor, int]:
    """Sum ``sums`` (a 1-d tensor) and the count ``n`` over every rank, in one call."""
    totals = torch.cat([sums.double(), sums.new_tensor([n], dtype=torch.float64)])
    dist.all_reduce(totals)
    return totals[:-1].to(sums.dtype), int(totals[-1].item())


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def shard_loader(
    data: Any, batch_size: int, train: bool, rank: int, world_size: int, seed: int
) -> Iterable[Any]:
    """This rank's share of a TensorLoader, Dataset or DataLoader; other iterables as given.

    A :class:`~torchvae.data.TensorLoader` or :class:`~torchvae.streaming.StreamLoader`
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
