"""Distributed data parallel: the process group, each rank's device and seed, and the few
collective operations the loop needs once per epoch, behind :class:`Processes`.

Under ``torchrun`` (``torchrun --standalone --nproc_per_node=2 train.py``; for several
machines add ``--nnodes``, ``--rdzv-backend=c10d`` and ``--rdzv-endpoint=HOST:29500``) the
trainer starts the process group (``nccl`` on CUDA, ``gloo`` on CPU), wraps the model and
the loss in :class:`~torch.nn.parallel.DistributedDataParallel`, gives each rank its share
of the data (padded so every rank runs the same number of steps, shuffled from
``seed + epoch``), all-reduces the epoch's metrics so that every rank reports the mean over
all examples, and writes files on rank 0 only, with a barrier after each epoch. Rank ``r``
seeds with ``seed + r``. The batch size is per process.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import inspect
import os
import random
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..objectives.losses import LossOutput

__all__ = [
    "ModelAndLoss",
    "Processes",
    "all_gather",
    "all_reduce_sums",
    "init_process_group",
    "rank_device",
    "seed_everything",
    "wants_ddp",
]

T = TypeVar("T")


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


def seed_everything(seed: int) -> None:
    """Seed torch (every device), Python's ``random`` and NumPy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


class Processes:
    """This process, alone or as one rank of a DDP run.

    Args:
        strategy: ``"auto"`` (DDP when a process group is initialized or the launcher set
            ``WORLD_SIZE > 1``), ``"ddp"`` (required) or ``"none"``.
        device: the device asked for; under DDP, ``cuda`` becomes ``cuda:LOCAL_RANK``.
    """

    def __init__(self, strategy: object, device: torch.device) -> None:
        if strategy not in ("auto", "ddp", "none"):
            raise ValueError(f"strategy must be one of ('auto', 'ddp', 'none'), got {strategy!r}")
        self.enabled = wants_ddp(str(strategy))
        self.device = rank_device(device) if self.enabled else device
        if self.enabled:
            init_process_group(self.device)
        self.rank = dist.get_rank() if self.enabled else 0
        self.world_size = dist.get_world_size() if self.enabled else 1

    def wrap(self, module: nn.Module) -> DistributedDataParallel | None:
        """``module`` in DistributedDataParallel, or ``None`` for one process."""
        if not self.enabled:
            return None
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def seed(self, seed: int | None) -> None:
        """Seed every generator: with ``seed + rank`` (a seed drawn on rank 0 for ``None``
        under DDP, so that the ranks still differ)."""
        if not self.enabled:
            if seed is not None:
                seed_everything(seed)
            return
        shared = [seed if seed is not None else int(torch.randint(2**31, ()))]
        if seed is None:
            dist.broadcast_object_list(shared, src=0)
        seed_everything(shared[0] + self.rank)

    def on_rank_zero(self, fn: Callable[[], T]) -> T:
        """``fn()`` computed on rank 0 and given to every rank (its exception too)."""
        if not self.enabled:
            return fn()
        found: list[Any] = [None]
        if self.rank == 0:
            try:
                found[0] = fn()
            except (OSError, ValueError) as e:
                found[0] = e
        dist.broadcast_object_list(found, src=0)
        if isinstance(found[0], BaseException):
            raise found[0]
        result: T = found[0]
        return result

    def sum(self, sums: Tensor, n: int) -> tuple[Tensor, int]:
        """``sums`` and the count ``n`` summed over the ranks."""
        return all_reduce_sums(sums, n) if self.enabled else (sums, n)

    def largest(self, value: int, device: torch.device) -> int:
        """The largest ``value`` over the ranks."""
        if not self.enabled:
            return value
        widest = torch.tensor([value], device=device)
        dist.all_reduce(widest, op=dist.ReduceOp.MAX)
        return int(widest.item())

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order, or ``None`` for one process."""
        return all_gather(value) if self.enabled else None

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.enabled:
            dist.barrier()
