"""Data: MNIST and Fashion-MNIST, image folders, tensor files, CIFAR-10, data with known
factors, and the loaders that batch them."""

from __future__ import annotations

from .cifar import CIFAR10_CLASSES, CIFARFormatError, load_cifar10
from .dequantization import dequantization_correction, dequantize
from .factor_files import DSprites, Shapes3D, load_factor_dataset
from .factors import FactorDataset, TensorFactorDataset
from .imagefolder import (
    IMAGE_SUFFIXES,
    ImageFiles,
    ImageFolderDataset,
    read_image,
    scan_image_folder,
)
from .images import ImageSplit, load_image_data, split_indices
from .loader import TensorLoader
from .mnist import (
    MNIST,
    ChecksumError,
    DatasetNotFoundError,
    FashionMNIST,
    IDXFormatError,
    load_dataset,
    mnist_loaders,
    read_idx,
)
from .sprites import Sprites, load_sprites
from .streaming import DatasetImages, StreamLoader, materialize
from .tensorfile import TENSOR_FILE_SUFFIXES, read_tensor_file

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGE_SUFFIXES",
    "MNIST",
    "TENSOR_FILE_SUFFIXES",
    "CIFARFormatError",
    "ChecksumError",
    "DSprites",
    "DatasetImages",
    "DatasetNotFoundError",
    "FactorDataset",
    "FashionMNIST",
    "IDXFormatError",
    "ImageFiles",
    "ImageFolderDataset",
    "ImageSplit",
    "Shapes3D",
    "Sprites",
    "StreamLoader",
    "TensorFactorDataset",
    "TensorLoader",
    "dequantization_correction",
    "dequantize",
    "load_cifar10",
    "load_dataset",
    "load_factor_dataset",
    "load_image_data",
    "load_sprites",
    "materialize",
    "mnist_loaders",
    "read_idx",
    "read_image",
    "read_tensor_file",
    "scan_image_folder",
    "split_indices",
]
