r"""A fast in-memory loader: batches built by indexing one ``uint8`` tensor of images.

:class:`TensorLoader` converts only the batch it builds to ``float32`` in :math:`[0, 1]`,
several times faster than a ``DataLoader`` that makes one PIL image at a time; it binarizes
(dynamically or statically) and dequantizes on the way, reproducibly.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from .._validation import check_positive_int, check_tensor
from .dequantization import dequantize as _dequantize

__all__ = ["Binarize", "TensorLoader"]

Binarize = Literal["none", "dynamic", "static"]


def _stream_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (seed, stream, epoch, ...)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _generator(device: torch.device, *parts: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_stream_seed(*parts))


def _bernoulli(p: Tensor, gen: torch.Generator) -> Tensor:
    r"""Draw ``Bernoulli(p)`` as a bool tensor, with ``p = x / 255`` for ``uint8`` images.

    For bytes, :math:`P(r < x) = x / 255` exactly for :math:`r` uniform on
    :math:`\{0, \dots, 254\}`; comparing random bytes is several times faster than
    ``torch.bernoulli`` on floats.
    """
    if p.dtype == torch.uint8:
        r = torch.randint(0, 255, p.shape, dtype=torch.uint8, generator=gen, device=p.device)
    else:
        r = torch.rand(p.shape, dtype=p.dtype, generator=gen, device=p.device)
    return r < p


_SHUFFLE, _DYNAMIC, _STATIC, _DEQUANTIZE = 0, 1, 2, 3


def epoch_indices(
    n: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1
) -> Tensor:
    """The indices into ``n`` examples that ``rank`` visits in ``epoch``, in order.

    A pure function of its arguments: the order of :meth:`TensorLoader.indices`, shared
    with the streaming loader so that both visit the same examples in the same order.
    """
    if shuffle:
        order = torch.randperm(n, generator=_generator(torch.device("cpu"), seed, _SHUFFLE, epoch))
    else:
        order = torch.arange(n)
    total = math.ceil(n / world_size) * world_size
    if total > n:
        order = order.repeat(math.ceil(total / n))[:total]
    return order[rank:total:world_size]


def to_float_batch(
    batch: Tensor, dequantize: bool, seed: int, epoch: int, rank: int, index: int
) -> Tensor:
    """A batch of images as ``float32``: ``x / 255``, or dequantized, or as given if float.

    The dequantization noise of batch ``index`` is a pure function of
    ``(seed, epoch, rank, index)``.
    """
    if dequantize:
        return _dequantize(batch, _generator(batch.device, seed, _DEQUANTIZE, epoch, rank, index))
    if batch.dtype == torch.uint8:
        if torch.get_default_dtype() == torch.float32:  # one pass, the same values
            return batch.div(255.0)
        return batch.to(torch.float32).div_(255)
    return batch.to(torch.float32)


class TensorLoader:
    r"""Batches from an in-memory image tensor, built by indexing; reproducible per epoch.

    Each batch is gathered from the ``uint8`` tensor and converted in one pass to
    ``float32`` :math:`x / 255 \in [0, 1]` (floating-point images are used as given).
    Everything random is a pure function of ``(seed, epoch, rank, batch index)``, as with
    ``DistributedSampler``: :meth:`set_epoch` selects the epoch, so a run resumed at epoch
    ``e`` sees the same batches, bit for bit. Each ``iter()`` uses the current epoch, then
    advances it by one, so plain loops also reshuffle every epoch.

    Binarization: ``"dynamic"`` draws :math:`x \sim \mathrm{Bernoulli}(x/255)` afresh for
    each batch of each epoch; ``"static"`` draws it once, from ``seed``, for the whole data.
    Dequantization (``uint8`` images only) yields :math:`(x + u) / 256` with fresh uniform
    noise :math:`u` per batch of each epoch (:func:`~torchvae.data.dequantization.dequantize`;
    its docs give the bits/dim correction this implies).

    Args:
        images: ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, D)`` images, ``uint8`` (0..255) or
            floating point in [0, 1].
        targets: Optional labels ``(N, ...)``; batches are then ``(x, y)`` pairs.
        batch_size: Images per batch.
        shuffle: A new random order every epoch.
        seed: Seed of the order and of binarization.
        drop_last: Drop the last, smaller batch.
        flatten: Yield ``(B, D)`` batches; else ``(B, C, H, W)`` (a channel axis is added
            to ``(N, H, W)`` images).
        binarize: ``"none"``, ``"dynamic"`` or ``"static"``.
        device: Move the whole ``uint8`` tensor there once; batches are made there.
        rank: This process's rank for ``DistributedDataParallel``.
        world_size: The number of processes; each epoch's order is split between them,
            wrapping around so that every rank has the same number of batches.
        max_batches: At most this many batches per epoch (the first ones of the epoch's
            order), for quick runs; ``None`` for all.
        dequantize: Yield uniformly dequantized batches :math:`(x + u) / 256` instead of
            :math:`x / 255` (``uint8`` images; not with binarization).

    Raises:
        TypeError: ``images`` or ``targets`` is not a tensor, or ``dequantize`` with
            floating-point images.
        ValueError: An argument is out of range (the message names it).

    Example:
        >>> loader = TensorLoader(torch.zeros(10, 28, 28, dtype=torch.uint8), batch_size=4)
        >>> [tuple(x.shape) for x in loader]
        [(4, 1, 28, 28), (4, 1, 28, 28), (2, 1, 28, 28)]
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor | None = None,
        batch_size: int = 100,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        flatten: bool = False,
        binarize: Binarize = "none",
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        dequantize: bool = False,
    ) -> None:
        images = check_tensor(images, "images")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"images must be uint8 or floating point, got dtype {images.dtype}")
        if images.dim() < 2 or images.shape[0] == 0:
            raise ValueError(
                f"images must have shape (N, ...) with N >= 1, got {tuple(images.shape)}"
            )
        if targets is not None:
            targets = check_tensor(targets, "targets")
            if targets.dim() == 0 or targets.shape[0] != images.shape[0]:
                raise ValueError(
                    f"targets must have shape ({images.shape[0]}, ...) to match images, "
                    f"got {tuple(targets.shape)}"
                )
        if binarize not in ("none", "dynamic", "static"):
            raise ValueError(f"binarize must be 'none', 'dynamic' or 'static', got {binarize!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if dequantize and images.dtype != torch.uint8:
            raise TypeError(f"dequantize=True needs uint8 (8-bit) images, got dtype {images.dtype}")
        if dequantize and binarize != "none":
            raise ValueError(f"dequantize=True and binarize={binarize!r} exclude each other")
        self.world_size = check_positive_int(world_size, "world_size")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_batches = (
            None if max_batches is None else check_positive_int(max_batches, "max_batches")
        )
        self.rank, self.seed, self.shuffle, self.drop_last = rank, seed, shuffle, drop_last
        self.flatten, self.binarize, self.dequantize = flatten, binarize, bool(dequantize)
        self.dataset_size = int(images.shape[0])
        self.epoch = 0
        self.device = images.device if device is None else torch.device(device)
        self.images = images.to(self.device)
        self.targets = None if targets is None else targets.to(self.device)
        if binarize == "static":
            self.images = self._static_binarized()  # now {0, 1} (stored as 0 and 255 in uint8)

    def _static_binarized(self) -> Tensor:
        gen = _generator(self.device, self.seed, _STATIC)
        out = torch.empty_like(self.images)
        scale = 255 if out.dtype == torch.uint8 else 1
        for start in range(0, self.dataset_size, 8192):  # chunks bound the temporary memory
            chunk = self.images[start : start + 8192]
            out[start : start + 8192] = _bernoulli(chunk, gen).to(out.dtype).mul_(scale)
        return out

    @property
    def in_unit_interval(self) -> bool:
        """Whether every batch is finite and in [0, 1] by construction (``uint8`` images).

        The :class:`~torchvae.Trainer` then skips checking each batch's values.
        """
        return self.images.dtype == torch.uint8

    @property
    def num_samples(self) -> int:
        """Images this rank sees per epoch (padded by wrapping when sharded)."""
        return math.ceil(self.dataset_size / self.world_size)

    def __len__(self) -> int:
        """Number of batches per epoch (on this rank)."""
        full = self.num_samples // self.batch_size
        n = full if self.drop_last else math.ceil(self.num_samples / self.batch_size)
        return n if self.max_batches is None else min(n, self.max_batches)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and binarization the next ``iter()`` uses."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def indices(self, epoch: int) -> Tensor:
        """The indices into the data that this rank visits in ``epoch``, in order."""
        return epoch_indices(
            self.dataset_size, self.seed, epoch, self.shuffle, self.rank, self.world_size
        )

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        """Batches of the current epoch; the epoch is then advanced by one."""
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch, self.indices(epoch).to(self.device))

    def _batches(self, epoch: int, order: Tensor) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = self.images.index_select(0, idx)
            if self.binarize == "dynamic":
                gen = _generator(self.device, self.seed, _DYNAMIC, epoch, self.rank, b)
                x = _bernoulli(batch, gen).to(torch.float32)
            else:
                x = to_float_batch(batch, self.dequantize, self.seed, epoch, self.rank, b)
            if self.flatten:
                x = x.reshape(x.shape[0], -1)
            elif x.dim() == 3:
                x = x.unsqueeze(1)
            yield x if self.targets is None else (x, self.targets.index_select(0, idx))
