"""Images read on the fly: batches from a ``Dataset`` through ``DataLoader`` workers.

The streaming counterpart of :class:`~torchvae.data.TensorLoader`, for image data that does
not fit in memory. Workers decode ``uint8`` images and collate them; each batch becomes
``float32`` in the main process, by the same rule as the ``TensorLoader``'s. The order
of every epoch is the ``TensorLoader``'s too (a pure function of the seed, the epoch and the
rank), and so is the dequantization noise of every batch: for the same images, seed and
batch size, the two loaders yield the same batches, bit for bit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .._validation import check_positive_int
from ._pixels import item_to_chw
from .loader import epoch_indices, to_float_batch

__all__ = ["DatasetImages", "StreamLoader", "materialize"]


class DatasetImages(Dataset[tuple[Tensor, int]]):
    """Any map-style ``Dataset`` of images, as items ``(image, label)`` of one shape.

    An item of ``dataset`` may be an image or a tuple ``(image, label, ...)``; an image a
    tensor ``(C, H, W)`` or ``(H, W)``, a numpy array ``(H, W, C)`` or ``(H, W)``, or a PIL
    image. It becomes ``uint8`` ``(C, H, W)`` (``float32`` for float images, checked to lie
    in [0, 1]); a label an ``int`` (``-1`` when there is none).

    Args:
        dataset: The dataset (``len`` and integer indexing).
        classes: Class names for the labels, if known.

    Attributes:
        shape: ``(C, H, W)`` of the first item; every item must have it.
        dtype: ``torch.uint8``, or ``torch.float32`` for float images.
        has_labels: Whether the first item carries a label.

    Raises:
        TypeError: ``dataset`` has no length, or an item that is no image.
        ValueError: an empty dataset, or an item of another shape or dtype (from
            ``__getitem__``; the message gives its index).
    """

    def __init__(self, dataset: Any, classes: tuple[str, ...] | None = None) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"dataset must be a map-style Dataset (len and indexing), got "
                f"{type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("dataset is empty")
        self.dataset, self.classes = dataset, classes
        first, label = self._convert(0)
        self.shape: tuple[int, int, int] = (first.shape[0], first.shape[1], first.shape[2])
        self.dtype = first.dtype
        self.has_labels = label >= 0

    def __len__(self) -> int:
        return len(self.dataset)

    def _convert(self, index: int) -> tuple[Tensor, int]:
        item = self.dataset[index]
        what = f"item {index} of the dataset"
        pair = isinstance(item, (tuple, list))
        image, label = (item[0], item[1] if len(item) > 1 else None) if pair else (item, None)
        return item_to_chw(image, what), -1 if label is None else _label(label, what)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self._convert(index)
        if tuple(image.shape) != self.shape or image.dtype != self.dtype:
            raise ValueError(
                f"item {index} of the dataset is an image of shape {tuple(image.shape)} and "
                f"dtype {image.dtype}, but the first is {self.shape} {self.dtype}; every "
                "image must have one shape (resize them in the dataset)"
            )
        if (label >= 0) != self.has_labels:
            raise ValueError(f"item {index} of the dataset: some items have labels, others not")
        return image, label


def _label(label: object, what: str) -> int:
    if isinstance(label, Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = label.item()
    if isinstance(label, bool) or not hasattr(label, "__index__"):
        raise TypeError(f"{what}: a label must be an integer, got {label!r}")
    value = operator.index(label)
    if value < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {value}")
    return value


class _EpochSampler(Sampler[int]):
    """The ``TensorLoader``'s order of the current epoch, cut to ``limit`` indices."""

    def __init__(
        self, n: int, seed: int, shuffle: bool, rank: int, world_size: int, limit: int | None
    ) -> None:
        self.n, self.seed, self.shuffle, self.limit = n, seed, shuffle, limit
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def __iter__(self) -> Iterator[int]:
        order = epoch_indices(
            self.n, self.seed, self.epoch, self.shuffle, self.rank, self.world_size
        )
        return iter(order[: self.limit].tolist())

    def __len__(self) -> int:
        n = math.ceil(self.n / self.world_size)
        return n if self.limit is None else min(n, self.limit)


class StreamLoader:
    r"""Batches of images decoded on the fly by ``DataLoader`` workers; reproducible per epoch.

    The arguments, the epochs (:meth:`set_epoch`, each ``iter()`` advancing by one), the
    order, the sharding and the dequantization are those of
    :class:`~torchvae.data.TensorLoader`, which this loader matches batch for batch.

    Args:
        dataset: Items ``(image, label)``: ``uint8`` (or ``float32`` in [0, 1]) images of
            one shape ``(C, H, W)``, ``int`` labels (e.g. an
            :class:`~torchvae.data.imagefolder.ImageFolderDataset` or :class:`DatasetImages`).
        batch_size: Images per batch.
        shuffle: A new random order every epoch.
        seed: Seed of the order and of the dequantization.
        drop_last: Drop the last, smaller batch.
        flatten: Yield ``(B, D)`` batches instead of ``(B, C, H, W)``.
        dequantize: Yield :math:`(x + u) / 256` instead of :math:`x / 255` (``uint8``).
        labels: Yield ``(x, y)`` batches; ``False`` yields ``x`` alone.
        num_workers: ``DataLoader`` worker processes (0 decodes in this process).
        rank: This process's rank for ``DistributedDataParallel``.
        world_size: The number of processes.
        max_batches: At most this many batches per epoch; ``None`` for all.
        pin_memory: Pin batches in page-locked memory (for copies to a GPU).

    Raises:
        ValueError: An argument is out of range (the message names it).

    Example:
        >>> images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
        >>> data = DatasetImages(torch.utils.data.TensorDataset(images))
        >>> [tuple(x.shape) for x in StreamLoader(data, batch_size=4, labels=False)]
        [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
    """

    def __init__(
        self,
        dataset: Dataset[tuple[Tensor, int]],
        batch_size: int = 100,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        flatten: bool = False,
        dequantize: bool = False,
        labels: bool = True,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        world_size = check_positive_int(world_size, "world_size")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        self.max_batches = (
            None if max_batches is None else check_positive_int(max_batches, "max_batches")
        )
        self.dataset, self.dataset_size = dataset, len(dataset)  # type: ignore[arg-type]
        if self.dataset_size == 0:
            raise ValueError("dataset is empty")
        self.seed, self.shuffle, self.drop_last, self.flatten = seed, shuffle, drop_last, flatten
        self.dequantize, self.labels, self.epoch = dequantize, labels, 0
        limit = None if max_batches is None else max_batches * batch_size
        self.sampler = _EpochSampler(self.dataset_size, seed, shuffle, rank, world_size, limit)
        self.loader: DataLoader[Any] = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )

    @property
    def rank(self) -> int:
        """This process's rank; the Trainer sets it (and :attr:`world_size`) under DDP."""
        return self.sampler.rank

    @rank.setter
    def rank(self, value: int) -> None:
        self.sampler.rank = value

    @property
    def world_size(self) -> int:
        """The number of processes the epoch's order is split between."""
        return self.sampler.world_size

    @world_size.setter
    def world_size(self, value: int) -> None:
        self.sampler.world_size = value

    @property
    def in_unit_interval(self) -> bool:
        """Whether every batch is in [0, 1] by construction (``uint8`` images).

        The :class:`~torchvae.Trainer` then skips checking each batch's values.
        """
        return getattr(self.dataset, "dtype", None) == torch.uint8

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
        """Select the epoch whose order, crops and dequantization the next ``iter()`` uses."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        """Batches of the current epoch; the epoch is then advanced by one."""
        epoch = self.epoch
        self.epoch += 1
        self.sampler.epoch = epoch
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)  # workers start afresh each epoch, with this copy of the dataset
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        for b, (images, targets) in enumerate(self.loader):
            x = to_float_batch(images, self.dequantize, self.seed, epoch, self.rank, b)
            if self.flatten:
                x = x.reshape(x.shape[0], -1)
            yield (x, targets) if self.labels else x


def materialize(
    dataset: Dataset[tuple[Tensor, int]],
    shape: tuple[int, int, int],
    dtype: torch.dtype = torch.uint8,
    num_workers: int = 0,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """Read a whole dataset of ``(image, label)`` items into memory, in its order.

    Args:
        dataset: Items as :class:`StreamLoader` takes them.
        shape: ``(C, H, W)`` of every image.
        dtype: The images' dtype.
        num_workers: ``DataLoader`` worker processes that decode in parallel.
        batch_size: Images per worker task.

    Returns:
        ``(images, labels)``: ``(N, C, H, W)`` of ``dtype`` and ``int64`` ``(N,)`` (``-1``
        for unlabelled items).
    """
    n = len(dataset)  # type: ignore[arg-type]
    images = torch.empty((n, *shape), dtype=dtype)
    labels = torch.empty(n, dtype=torch.int64)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    start = 0
    for chunk, targets in loader:
        images[start : start + len(chunk)] = chunk
        labels[start : start + len(chunk)] = targets
        start += len(chunk)
    return images, labels
