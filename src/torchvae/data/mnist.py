r"""MNIST and Fashion-MNIST, found on disk or downloaded, as in-memory tensors and loaders.

The images stay in memory as one ``uint8`` tensor, batched by a
:class:`~torchvae.data.TensorLoader`.

Where the files are looked for (each folder in the torchvision layout
``FOLDER/MNIST/raw`` (``FOLDER/FashionMNIST/raw``) first, then as a flat folder): ``root``
alone, when given; otherwise, in order,

1. the folder named by the environment variable ``TORCHVAE_DATA_DIR``;
2. the textbook's ``./MNIST_DATA`` (flat only for MNIST, so that it is never mistaken for
   Fashion-MNIST);
3. for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``
   (``apt-get install dataset-fashion-mnist``).

Both splits come from one folder, the first of these holding any of the dataset's files:
a folder with only the training files is an error for the test split (naming the missing
files), never completed from another folder.

Each of the four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``) may end in ``.gz``. With
``download=True`` and no files found, the ``.gz`` files are fetched from torchvision's
mirrors into ``FOLDER/<Name>/raw`` of the first folder above (``./MNIST_DATA`` when none is
given) and checked against the mirrors' MD5 checksums.

Checksum policy (``verify=True``, the default): a file whose decompressed length is the
official one is checked against the official MD5 of its content, whatever its compression;
a file of another length cannot be the official one and is used as given (a subset, or the
small fake files of tests) after the structural checks every file gets. ``verify=False``
skips the MD5 checks.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._validation import check_positive_int
from ._idx import (
    DATASETS,
    ChecksumError,
    DatasetNotFoundError,
    IDXFormatError,
    dataset_key,
    locate,
    read_idx,
    read_verified,
)
from .loader import Binarize, TensorLoader

__all__ = [
    "MNIST",
    "ChecksumError",
    "DatasetNotFoundError",
    "FashionMNIST",
    "IDXFormatError",
    "load_dataset",
    "mnist_loaders",
    "read_idx",
]


def load_dataset(
    name: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    download: bool = False,
    verify: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load one split of MNIST or Fashion-MNIST as in-memory tensors.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        root: The folder holding the files (flat, or torchvision's ``root/MNIST/raw``
            layout); when given, the only place looked in.
        train: The 60000 training images (``True``) or the 10000 test images.
        download: Fetch the files from torchvision's mirrors if found nowhere.
        verify: Check official files against their MD5 checksums (see the module notes).

    Returns:
        ``(images, labels)``: ``uint8`` of shape ``(N, H, W)`` and ``int64`` of shape ``(N,)``.

    Raises:
        ValueError: Unknown ``name``, or image and label files that do not match.
        DatasetNotFoundError: The files are absent, ``root`` does not exist, or the folder
            holding the data set lacks this split; the message says where it looked and
            which files are missing.
        IDXFormatError: A file is malformed (the message names it).
        ChecksumError: An official-length file has the wrong checksum.
    """
    key = dataset_key(name)
    title = DATASETS[key][0]
    paths = locate(key, root, train, download)
    images = read_verified(paths[0], paths[0].name.removesuffix(".gz"), title, verify)
    labels = read_verified(paths[1], paths[1].name.removesuffix(".gz"), title, verify)
    if images.dim() != 3 or labels.dim() != 1:
        raise IDXFormatError(
            f"{paths[0]} and {paths[1]}: expected images of shape (N, H, W) and labels of "
            f"shape (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{paths[0]} holds {images.shape[0]} images but {paths[1]} holds "
            f"{labels.shape[0]} labels"
        )
    return images, labels.long()


class MNIST(Dataset[tuple[Tensor, int]]):
    """The MNIST digits as a torch ``Dataset``, held in memory.

    Args:
        root: The folder holding the files, the only place looked in when given (see the
            module notes for the search otherwise).
        train: The training split (60000 images) or the test split (10000).
        download: Fetch the files from torchvision's mirrors when found nowhere.
        verify: Check official files against their MD5 checksums.

    Attributes:
        data: ``uint8`` images, shape ``(N, 28, 28)``.
        targets: ``int64`` labels, shape ``(N,)``.

    Raises:
        DatasetNotFoundError: The files are nowhere, ``root`` does not exist, or the
            folder holding the data lacks a split; the message says what is missing.

    Example:
        >>> ds = MNIST(train=False)  # doctest: +SKIP
        >>> image, label = ds[0]  # doctest: +SKIP
        >>> image.shape, image.dtype  # doctest: +SKIP
        (torch.Size([1, 28, 28]), torch.float32)
    """

    name = "mnist"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        train: bool = True,
        download: bool = False,
        verify: bool = True,
    ) -> None:
        self.train = train
        self.data, self.targets = load_dataset(self.name, root, train, download, verify)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """Return ``(image, label)``: ``float32`` of shape ``(1, 28, 28)`` in [0, 1], ``int``."""
        return self.data[index].unsqueeze(0).float().div_(255), int(self.targets[index])


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando's clothing images) as a torch ``Dataset``; see :class:`MNIST`.

    Also found in Debian's ``/usr/share/datasets/fashion-mnist``.
    """

    name = "fashion-mnist"


def mnist_loaders(
    root: str | os.PathLike[str] | None = None,
    dataset: str = "mnist",
    batch_size: int = 100,
    test_batch_size: int | None = None,
    flatten: bool = False,
    binarize: Binarize = "none",
    seed: int = 0,
    download: bool = False,
    device: torch.device | str | None = None,
    rank: int = 0,
    world_size: int = 1,
    verify: bool = True,
    max_batches: int | None = None,
) -> tuple[TensorLoader, TensorLoader]:
    """The textbook's loaders: shuffled training batches of 100 and the test set in order.

    With binarization, the training set uses the mode asked for and the test set a static
    binarization (one fixed draw from ``seed``), so that test scores compare across epochs.

    Args:
        root: The folder holding the files, the only place looked in when given (see the
            module notes for the search otherwise).
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        batch_size: Training batch size.
        test_batch_size: Test batch size (default: ``batch_size``).
        flatten: Yield ``(B, 784)`` batches instead of ``(B, 1, 28, 28)``.
        binarize: ``"none"``, ``"dynamic"`` or ``"static"`` (see :class:`TensorLoader`).
        seed: Seed of the shuffle and the binarization.
        download: Fetch the files from torchvision's mirrors when found nowhere.
        device: Keep the data (as ``uint8``) on this device.
        rank: This process's rank, for ``DistributedDataParallel``.
        world_size: The number of processes.
        verify: Check official files against their MD5 checksums.
        max_batches: At most this many batches per epoch from each loader (quick runs).

    Returns:
        ``(train_loader, test_loader)``, two :class:`TensorLoader` yielding ``(x, y)``.

    Raises:
        ValueError: Unknown ``dataset`` or bad loader arguments.
        DatasetNotFoundError: The files are nowhere, ``root`` does not exist, or the
            folder holding the data lacks a split; the message says what is missing.

    Example:
        >>> train, test = mnist_loaders(flatten=True)  # doctest: +SKIP
        >>> x, y = next(iter(train))  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        torch.Size([100, 784])
    """
    test_bs = batch_size if test_batch_size is None else test_batch_size
    dataset_key(dataset)
    for value, name in ((batch_size, "batch_size"), (test_bs, "test_batch_size")):
        check_positive_int(value, name)
    if binarize not in ("none", "dynamic", "static"):
        raise ValueError(f"binarize must be 'none', 'dynamic' or 'static', got {binarize!r}")
    train = TensorLoader(
        *load_dataset(dataset, root, True, download, verify),
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        flatten=flatten,
        binarize=binarize,
        device=device,
        rank=rank,
        world_size=world_size,
        max_batches=max_batches,
    )
    test = TensorLoader(
        *load_dataset(dataset, root, False, download, verify),
        batch_size=test_bs,
        shuffle=False,
        seed=seed,
        flatten=flatten,
        binarize="none" if binarize == "none" else "static",
        device=device,
        rank=rank,
        world_size=world_size,
        max_batches=max_batches,
    )
    return train, test
