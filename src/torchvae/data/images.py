"""Any image data behind one entry point: :func:`load_image_data` and its :class:`ImageSplit`.

``spec`` says what to read:

- ``"mnist"``, ``"fashion-mnist"``: MNIST, Fashion-MNIST (:func:`~torchvae.data.load_dataset`),
  ``(1, 28, 28)``;
- ``"cifar10"``: CIFAR-10's binary release (:func:`~torchvae.data.cifar.load_cifar10`),
  ``(3, 32, 32)``;
- ``"folder:PATH"``: a folder of images (:class:`~torchvae.data.imagefolder.ImageFolderDataset`);
- ``"file:PATH"``: a ``.npy``, ``.npz`` or ``.pt`` file
  (:func:`~torchvae.data.tensorfile.read_tensor_file`);
- a ``torch.utils.data.Dataset`` of images (:class:`~torchvae.data.DatasetImages`)

(a bare existing ``PATH`` is read as ``folder:`` or ``file:`` too). Every split comes back
the same way: ``uint8`` images ``(N, C, H, W)`` and ``int64`` labels (or ``None``) in memory,
or, for a folder too large for memory, a ``Dataset`` decoded on the fly; either way
:meth:`ImageSplit.loader` gives the batches (:class:`~torchvae.data.TensorLoader` or
:class:`~torchvae.data.StreamLoader`, which yield the same batches).

Splits: MNIST and CIFAR-10 have theirs; so does a folder with ``train/`` and ``test/``
sub-folders and a tensor file with ``train_*`` and ``test_*`` arrays. Other data is split by
:func:`split_indices`: a fraction ``test_fraction`` of it, chosen by ``split_seed``, is the
test split, the same one on every call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ._idx import DATASETS, dataset_key
from ._pixels import check_labels, to_nchw, to_pixels
from .cifar import load_cifar10
from .imagefolder import ImageFiles, ImageFolderDataset, scan_image_folder
from .loader import Binarize, TensorLoader
from .mnist import load_dataset
from .streaming import DatasetImages, StreamLoader, materialize
from .tensorfile import TENSOR_FILE_SUFFIXES, read_tensor_file

__all__ = ["ImageSplit", "load_image_data", "split_indices"]

Split = Literal["train", "test"]
Storage = Literal["auto", "memory", "stream"]
_CIFAR_NAMES = ("cifar10", "cifar-10", "cifar_10")


@dataclass(frozen=True, eq=False, repr=False)
class ImageSplit:
    """One split of an image data set: in memory, or a ``Dataset`` read on the fly.

    Attributes:
        name: What was read, for messages (e.g. ``"folder:faces (train)"``).
        shape: ``(C, H, W)`` of every image.
        images: ``uint8`` ``(N, C, H, W)`` in memory (``float32`` in [0, 1] only for
            continuous data from a file or dataset), or ``None`` when streaming.
        labels: ``int64`` ``(N,)``, or ``None`` for unlabelled data.
        dataset: The streaming ``Dataset`` of ``(image, label)`` items, or ``None``.
        classes: The class names in label order, when known.
    """

    name: str
    shape: tuple[int, int, int]
    images: Tensor | None = None
    labels: Tensor | None = None
    dataset: Dataset[tuple[Tensor, int]] | None = None
    classes: tuple[str, ...] | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the images are held in memory (else they are read on the fly)."""
        return self.images is not None

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "streaming"
        classes = "" if self.classes is None else f", {len(self.classes)} classes"
        return f"ImageSplit({self.name!r}, {len(self)} x {self.shape}, {where}{classes})"

    def __len__(self) -> int:
        if self.images is not None:
            return int(self.images.shape[0])
        return len(self.dataset)  # type: ignore[arg-type]

    @classmethod
    def from_tensors(
        cls,
        images: Tensor,
        labels: Tensor | None = None,
        classes: tuple[str, ...] | None = None,
        layout: str | None = None,
        name: str = "tensors",
    ) -> ImageSplit:
        """An in-memory split from image tensors of any layout (see ``read_tensor_file``).

        Raises:
            ValueError, TypeError: bad layout, dtype, value range or labels.
        """
        pixels = to_pixels(to_nchw(images, layout, name), name)
        c, h, w = pixels.shape[1:]
        return cls(name, (c, h, w), pixels, check_labels(labels, len(pixels), name), None, classes)

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        storage: Storage = "auto",
        classes: tuple[str, ...] | None = None,
        num_workers: int = 0,
        max_memory: int | None = None,
        name: str = "dataset",
    ) -> ImageSplit:
        """Any map-style ``Dataset`` of images (see :class:`~torchvae.data.DatasetImages`).

        With ``storage="memory"`` (or ``"auto"`` when it fits) every item is read once into
        one tensor; with ``"stream"`` the items are read as the batches need them.

        Raises:
            MemoryError: ``storage="memory"`` and the images do not fit (the message says
                how much they need).
        """
        images = dataset if isinstance(dataset, DatasetImages) else DatasetImages(dataset, classes)
        itemsize = torch.empty((), dtype=images.dtype).element_size()
        in_memory = _fits(len(images), images.shape, itemsize, storage, max_memory, name)
        if not in_memory:
            return cls(name, images.shape, None, None, images, classes)
        data, labels = materialize(images, images.shape, images.dtype, num_workers)
        pixels = to_pixels(data, name) if data.is_floating_point() else data
        return cls(name, images.shape, pixels, labels if images.has_labels else None, None, classes)

    def loader(
        self,
        batch_size: int = 100,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        flatten: bool = False,
        dequantize: bool = False,
        binarize: Binarize = "none",
        device: torch.device | str | None = None,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        pin_memory: bool = False,
    ) -> TensorLoader | StreamLoader:
        """The batches of this split: a ``TensorLoader`` in memory, else a ``StreamLoader``.

        The arguments are theirs (``binarize`` and ``device`` for memory only; ``num_workers``
        and ``pin_memory`` for streaming only). Batches are ``(x, y)`` when there are labels,
        else ``x``.

        Raises:
            ValueError: ``binarize`` on a streaming split, or a bad argument.
        """
        if self.images is not None:
            return TensorLoader(
                self.images,
                self.labels,
                batch_size=batch_size,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
                flatten=flatten,
                binarize=binarize,
                device=device,
                rank=rank,
                world_size=world_size,
                max_batches=max_batches,
                dequantize=dequantize,
            )
        if binarize != "none":
            raise ValueError(f"binarize={binarize!r} needs the images in memory ({self.name})")
        assert self.dataset is not None
        return StreamLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            flatten=flatten,
            dequantize=dequantize,
            labels=getattr(self.dataset, "labels", None) is not None
            or bool(getattr(self.dataset, "has_labels", False)),
            num_workers=num_workers,
            rank=rank,
            world_size=world_size,
            max_batches=max_batches,
            pin_memory=pin_memory,
        )


def split_indices(n: int, test_fraction: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A deterministic train/test split of ``n`` examples: ``(train, test)`` index tensors.

    The test split is ``round(n * test_fraction)`` examples (at least 1 and at most
    ``n - 1`` when ``0 < test_fraction < 1`` and ``n >= 2``) drawn by a generator seeded
    with ``seed``; both index sets are sorted, so each split keeps the data's order.

    Raises:
        ValueError: ``test_fraction`` outside [0, 1), or ``n`` < 1.

    Example:
        >>> train, test = split_indices(10, 0.2, seed=0)
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (8, 2, True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}")
    n_test = round(n * test_fraction)
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_test:].sort().values, order[:n_test].sort().values


def _available_memory() -> int | None:
    """Bytes this process can still allocate: the system's and its cgroup's, or None."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _fits(
    n: int,
    shape: tuple[int, int, int],
    itemsize: int,
    storage: str,
    max_memory: int | None,
    name: str,
) -> bool:
    """Whether to hold the images in memory; ``storage="memory"`` that cannot raises."""
    if storage not in ("auto", "memory", "stream"):
        raise ValueError(f"storage must be 'auto', 'memory' or 'stream', got {storage!r}")
    if storage == "stream":
        return False
    need = n * shape[0] * shape[1] * shape[2] * itemsize
    free = _available_memory()
    limit = max_memory if max_memory is not None else (None if free is None else free // 2)
    if limit is None or need <= limit:
        return True
    if storage == "auto":
        return False
    what = "max_memory" if max_memory is not None else "half the memory available now"
    raise MemoryError(
        f"{name}: {n} images of shape {shape} need {need / 2**30:.2f} GiB in memory, more "
        f"than {limit / 2**30:.2f} GiB ({what}); use storage='stream' (or 'auto') to read "
        "them on the fly, a smaller resize/crop, or a larger max_memory"
    )


def load_image_data(
    spec: str | os.PathLike[str] | Dataset[Any],
    root: str | os.PathLike[str] | None = None,
    split: Split = "train",
    *,
    resize: int | tuple[int, int] | None = None,
    crop: int | tuple[int, int] | None = None,
    random_crop: bool = False,
    channels: int | None = None,
    storage: Storage = "auto",
    max_memory: int | None = None,
    num_workers: int = 0,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    seed: int = 0,
    layout: str | None = None,
    images_key: str | None = None,
    labels_key: str | None = None,
    verify: bool = True,
    download: bool = False,
) -> ImageSplit:
    """Load one split of any image data (see the module notes for ``spec``).

    Args:
        spec: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"folder:PATH"``,
            ``"file:PATH"``, an existing path, or a ``Dataset``.
        root: Where MNIST, Fashion-MNIST and CIFAR-10 are searched first (unused otherwise).
        split: ``"train"`` or ``"test"``.
        resize: Folders: ``s`` scales the shorter side to ``s``, ``(h, w)`` to exactly that.
        crop: Folders: ``s`` or ``(h, w)``, the centre window (after ``resize``).
        random_crop: Folders: a random window instead, new every epoch (streams).
        channels: Folders: 1 (grayscale), 3 (RGB), or ``None`` for the first image's.
        storage: Folders and datasets: ``"memory"`` (one ``uint8`` tensor; raises if it
            does not fit), ``"stream"`` (decoded on the fly by the loader's workers), or
            ``"auto"``: in memory when it needs at most ``max_memory`` bytes.
        max_memory: Bytes the images may take in memory; ``None``: half of what is free.
        num_workers: Worker processes that decode a folder read into memory.
        test_fraction: The fraction held out as the test split of data that has none.
        split_seed: Seed of that split.
        seed: Seed of the random crops.
        layout: Files: ``"NHW"``, ``"NHWC"`` or ``"NCHW"``; ``None`` detects it.
        images_key: Files: the name of the images in a ``.npz`` or ``.pt`` dict.
        labels_key: Files: the name of the labels.
        verify: MNIST, CIFAR-10: check official files against their MD5 checksums.
        download: MNIST, Fashion-MNIST: fetch the files when found nowhere.

    Returns:
        The :class:`ImageSplit`.

    Raises:
        ValueError: an unknown ``spec`` or ``split``, options that do not apply to it, or
            bad data (the message names the file and the problem).
        DatasetNotFoundError: MNIST or CIFAR-10 files are nowhere (the message says where
            it looked and how to provide them).
        FileNotFoundError: ``folder:`` or ``file:`` names nothing.
        MemoryError: ``storage="memory"`` and the images do not fit.

    Example:
        >>> import tempfile, os, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.zeros((50, 16, 16, 3), np.uint8))
        >>> test = load_image_data(f"file:{path}", split="test", test_fraction=0.2)
        >>> len(test), test.shape, test.in_memory
        (10, (3, 16, 16), True)
        >>> x = next(iter(test.loader(batch_size=4, dequantize=True)))
        >>> tuple(x.shape), x.dtype
        ((4, 3, 16, 16), torch.float32)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(spec, Dataset):
        name = f"{type(spec).__name__} ({split})"
        _only_for(
            "a Dataset",
            resize=resize,
            crop=crop,
            random_crop=random_crop,
            channels=channels,
            layout=layout,
        )
        subset = Subset(spec, _pick_split(len(spec), split, test_fraction, split_seed).tolist())  # type: ignore[arg-type]
        return ImageSplit.from_dataset(subset, storage, None, num_workers, max_memory, name)
    kind, path = _parse_spec(spec)
    if kind in ("mnist", "cifar10"):
        _only_for(
            kind,
            resize=resize,
            crop=crop,
            random_crop=random_crop,
            channels=channels,
            layout=layout,
            storage=storage if storage == "stream" else None,
        )
        name = f"{spec} ({split})"
        if kind == "cifar10":
            images, labels, classes = load_cifar10(root, split == "train", verify)
            return ImageSplit.from_tensors(images, labels, classes, "NCHW", name)
        images, labels = load_dataset(str(spec), root, split == "train", download, verify)
        return ImageSplit.from_tensors(images, labels, None, "NHW", name)
    name = f"{kind}:{path} ({split})"
    if kind == "file":
        _only_for(
            "a tensor file",
            resize=resize,
            crop=crop,
            random_crop=random_crop,
            channels=channels,
            storage=storage if storage == "stream" else None,
        )
        content = read_tensor_file(path, layout, images_key, labels_key)
        if split in content:
            return ImageSplit.from_tensors(*content[split], None, "NCHW", name)
        everything, all_labels = content["all"]
        index = _pick_split(len(everything), split, test_fraction, split_seed)
        picked = None if all_labels is None else all_labels[index]
        return ImageSplit.from_tensors(everything[index], picked, None, "NCHW", name)
    if random_crop and storage == "memory":
        raise ValueError(
            "random_crop=True draws a new crop each time an image is read; it needs "
            "storage='stream' (or 'auto'), not 'memory'"
        )
    files = _folder_split(path, split, test_fraction, split_seed)
    dataset = ImageFolderDataset(files, resize, crop, random_crop, channels, seed)
    mode: Storage = "stream" if random_crop else storage
    if not _fits(len(dataset), dataset.shape, 1, mode, max_memory, name):
        return ImageSplit(name, dataset.shape, None, None, dataset, dataset.classes)
    images, labels = materialize(dataset, dataset.shape, torch.uint8, num_workers)
    return ImageSplit(
        name, dataset.shape, images, None if files.labels is None else labels, None, files.classes
    )


def _parse_spec(spec: str | os.PathLike[str]) -> tuple[str, Path]:
    """``("mnist" | "cifar10" | "folder" | "file", path)`` for a spec, or raise."""
    text = os.fspath(spec)
    lowered = text.lower()
    if lowered in _CIFAR_NAMES:
        return "cifar10", Path()
    try:
        dataset_key(lowered)
        return "mnist", Path()
    except ValueError:
        pass
    for kind in ("folder", "file"):
        if lowered.startswith(f"{kind}:"):
            return kind, Path(text[len(kind) + 1 :]).expanduser()
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder", path
    if path.is_file() and path.suffix.lower() in TENSOR_FILE_SUFFIXES:
        return "file", path
    known = ", ".join(repr(k) for k in (*DATASETS, "cifar10"))
    raise ValueError(
        f"unknown image data {text!r}: give {known}, 'folder:PATH' (a folder of images) or "
        f"'file:PATH' (a {'/'.join(TENSOR_FILE_SUFFIXES)} file)"
    )


def _only_for(what: str, **options: object) -> None:
    """Raise if an option that ``what`` has no use for was given."""
    given = [f"{k}={v!r}" for k, v in options.items() if v is not None and v is not False]
    if given:
        raise ValueError(
            f"{', '.join(given)}: not for {what}, which is read into memory as it is "
            "(resize, crop, random_crop and channels are for image folders, layout for "
            "tensor files, storage='stream' for folders and datasets)"
        )


def _pick_split(n: int, split: str, test_fraction: float, seed: int) -> Tensor:
    train, test = split_indices(n, test_fraction, seed)
    if split == "test" and len(test) == 0:
        raise ValueError(
            f"test_fraction={test_fraction} leaves no test split of {n} examples; give a "
            "larger fraction, or data with a test split"
        )
    return train if split == "train" else test


def _folder_split(path: Path, split: str, test_fraction: float, seed: int) -> ImageFiles:
    """The files of ``split``: from ``train/`` and ``test/`` sub-folders, else by fraction."""
    if not path.is_dir():
        raise FileNotFoundError(f"no image folder at {path}")
    if (path / "train").is_dir() and (path / "test").is_dir():
        train = scan_image_folder(path / "train")
        return train if split == "train" else scan_image_folder(path / "test", train.classes)
    files = scan_image_folder(path)
    return files.subset(_pick_split(len(files.files), split, test_fraction, seed).tolist())
