"""A folder of image files (PNG, JPEG, ...), any sizes, as a ``Dataset`` of ``uint8`` images.

Layout: images directly in the folder (unlabelled), or one sub-folder per class, named for
it (``root/cat/*.png``, ``root/dog/*.jpg``; nested folders below a class count for it), as
torchvision's ``ImageFolder`` reads it. Classes are the sorted sub-folder names, labels
their indices; hidden files and folders, and files of other types, are skipped.

Each image is decoded by PIL (which comes with torchvision), converted to grayscale (1
channel) or RGB (3 channels; alpha is dropped; 16-bit gray keeps its high byte), then
resized and cropped as asked, with the semantics of torchvision's ``Resize`` and ``CenterCrop`` /
``RandomCrop``: ``resize=s`` scales the shorter side to ``s`` (aspect kept),
``resize=(h, w)`` scales to exactly that; ``crop=(h, w)`` cuts the centre, or a random
window with ``random_crop=True`` (a new one each epoch, a pure function of the seed, the
epoch and the image's index). Every image must come out the same size.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["IMAGE_SUFFIXES", "ImageFiles", "ImageFolderDataset", "read_image", "scan_image_folder"]

#: The file endings read as images (in any letter case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm")
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass(frozen=True)
class ImageFiles:
    """The image files of a folder, in a fixed order, and their classes.

    Attributes:
        files: The image files, sorted by path.
        labels: Each file's class index, or ``None`` for an unlabelled folder.
        classes: The class names (sub-folder names) in label order, or ``None``.
    """

    files: tuple[Path, ...]
    labels: tuple[int, ...] | None
    classes: tuple[str, ...] | None

    def subset(self, indices: Sequence[int]) -> ImageFiles:
        """The files at ``indices`` (in that order), with the same classes."""
        return ImageFiles(
            tuple(self.files[i] for i in indices),
            None if self.labels is None else tuple(self.labels[i] for i in indices),
            self.classes,
        )


def _images_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)
        ]
    return found


def scan_image_folder(
    root: str | os.PathLike[str], classes: Sequence[str] | None = None
) -> ImageFiles:
    """The images under ``root``, labelled by sub-folder when it has class sub-folders.

    Args:
        root: The folder.
        classes: The class names to label by (e.g. a training split's, for its test
            split); ``None`` takes the sorted sub-folder names.

    Returns:
        The :class:`ImageFiles`.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no images; images both in ``root`` and in class sub-folders; a class
            sub-folder that is not among ``classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    top = sorted(
        p
        for p in root.iterdir()
        if not p.name.startswith(".") and p.is_file()
        if p.name.lower().endswith(IMAGE_SUFFIXES)
    )
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_class = {d.name: files for d in subdirs if (files := _images_under(d))}
    if top and by_class:
        raise ValueError(
            f"{root} holds images both at its top ({top[0].name}, ...) and in sub-folders "
            f"({', '.join(sorted(by_class))}); put every image in a class sub-folder, or "
            "all of them at the top for unlabelled data"
        )
    if not top and not by_class:
        raise ValueError(
            f"{root} holds no images (files ending in {', '.join(IMAGE_SUFFIXES)}), neither "
            "at its top nor in sub-folders"
        )
    if top:
        return ImageFiles(tuple(top), None, None)
    names = tuple(sorted(by_class)) if classes is None else tuple(classes)
    unknown = sorted(set(by_class) - set(names))
    if unknown:
        raise ValueError(
            f"{root} has class folders {unknown} that are not among the classes {list(names)}"
        )
    index = {name: i for i, name in enumerate(names)}
    pairs = [(f, index[c]) for c in sorted(by_class) for f in by_class[c]]
    return ImageFiles(tuple(f for f, _ in pairs), tuple(i for _, i in pairs), names)


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> Tensor:
    """Decode one image file (any format PIL reads) into a ``uint8`` tensor ``(C, H, W)``.

    Args:
        path: The file.
        channels: 1 (grayscale), 3 (RGB) or ``None`` for the file's own: 1 for gray (with
            or without alpha), else 3. Alpha is dropped; palettes are expanded.

    Raises:
        ValueError: the file cannot be decoded (the message names it), or a bad ``channels``.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if channels is None:
                channels = 1 if im.mode in _GRAY_MODES else 3
            mode = "L" if channels == 1 else "RGB"
            if im.mode in _WIDE_GRAY_MODES:  # PIL's convert would clip 16-bit values at 255
                im = (im if im.mode == "I" else im.convert("I")).point(_high_byte(), "L")
            if im.mode == mode:
                im.load()
            else:
                im = im.convert(mode)
            width, height = im.size
            data = bytearray(im.tobytes())
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot be decoded as an image ({exc})") from exc
    pixels = torch.frombuffer(data, dtype=torch.uint8)
    return pixels.view(height, width, channels).permute(2, 0, 1)


@functools.cache
def _high_byte() -> list[int]:
    """A lookup table from 16-bit values to their high byte."""
    return [v >> 8 for v in range(65536)]


def _pair(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair (height, width) of ints, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
        return value
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair (height, width) of ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair[0], pair[1]


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def _resize(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    height, width = image.shape[1:]
    if isinstance(size, int):  # the shorter side to ``size``, as torchvision's Resize(int)
        short, long = sorted((height, width))
        other = int(size * long / short)
        size = (size, other) if height <= width else (other, size)
    if size == (height, width):
        return image
    scaled = F.interpolate(
        image.unsqueeze(0).to(torch.float32),
        size=size,
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return scaled[0].round_().clamp_(0, 255).to(torch.uint8)


class ImageFolderDataset(Dataset[tuple[Tensor, int]]):
    """A folder of images, decoded on the fly: items ``(image, label)``.

    ``image`` is ``uint8`` of shape :attr:`shape` ``(C, H, W)``; ``label`` the class index,
    or ``-1`` for an unlabelled folder. Decoding happens in ``__getitem__``, so that
    ``DataLoader`` workers share it; see the module notes for the conversions.

    Args:
        source: A folder (scanned by :func:`scan_image_folder`) or its :class:`ImageFiles`.
        resize: ``s`` (the shorter side to ``s``), ``(h, w)`` (exactly), or ``None``.
        crop: ``s`` or ``(h, w)``: cut that window (after ``resize``); ``None`` for none.
        random_crop: Cut the window at a random place (a new one every epoch) instead of
            the centre.
        channels: 1 (grayscale), 3 (RGB), or ``None`` for the first image's.
        seed: Seed of the random crops.

    Attributes:
        shape: ``(C, H, W)`` of every image.
        classes: The class names, or ``None``.
        labels: ``int64`` labels ``(N,)``, or ``None``.

    Raises:
        ValueError: bad arguments, no images, or (from ``__getitem__``) an image that
            cannot be decoded or comes out another size (the message names the file).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> root = tempfile.mkdtemp()
        >>> for cls in ("cat", "dog"):
        ...     os.mkdir(os.path.join(root, cls))
        ...     Image.new("RGB", (48, 40)).save(os.path.join(root, cls, "a.png"))
        >>> ds = ImageFolderDataset(root, resize=32, crop=32)
        >>> ds.shape, ds.classes, len(ds), ds[1][1]
        ((3, 32, 32), ('cat', 'dog'), 2, 1)
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | ImageFiles,
        resize: int | tuple[int, int] | None = None,
        crop: int | tuple[int, int] | None = None,
        random_crop: bool = False,
        channels: int | None = None,
        seed: int = 0,
    ) -> None:
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
        if random_crop and crop is None:
            raise ValueError("random_crop=True needs crop, the size of the window to cut")
        self.source = source if isinstance(source, ImageFiles) else scan_image_folder(source)
        if not self.source.files:
            raise ValueError("an image folder dataset needs at least one image")
        self.resize = _pair(resize, "resize")
        crop_size = _pair(crop, "crop")
        self.crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        self.random_crop, self.seed, self.epoch = bool(random_crop), seed, 0
        first = read_image(self.source.files[0], channels)
        self.channels = int(first.shape[0]) if channels is None else channels
        self.shape: tuple[int, int, int] = (self.channels, 0, 0)
        height, width = self._transform(first, 0).shape[1:]
        self.shape = (self.channels, int(height), int(width))
        self.classes = self.source.classes
        self.labels = None if self.source.labels is None else torch.tensor(self.source.labels)

    def __len__(self) -> int:
        return len(self.source.files)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops the next reads use."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path = self.source.files[index]
        image = self._transform(read_image(path, self.channels), index)
        if tuple(image.shape) != self.shape:
            raise ValueError(
                f"{path}: comes out of shape {tuple(image.shape)}, but the first image "
                f"({self.source.files[0].name}) as {self.shape}; give resize=(h, w), or "
                "crop, to make every image one size"
            )
        labels = self.source.labels
        return image, -1 if labels is None else labels[index]

    def _transform(self, image: Tensor, index: int) -> Tensor:
        if self.resize is not None:
            image = _resize(image, self.resize)
        if self.crop is None:
            return image
        (height, width), (ch, cw) = image.shape[1:], self.crop
        if height < ch or width < cw:
            raise ValueError(
                f"{self.source.files[index]}: an image of {height}x{width} (after resizing) "
                f"is smaller than the crop {ch}x{cw}; resize it first (resize={max(ch, cw)})"
            )
        if self.random_crop:
            gen = torch.Generator().manual_seed(_seed(self.seed, self.epoch, index) >> 1)
            top = int(torch.randint(0, height - ch + 1, (), generator=gen))
            left = int(torch.randint(0, width - cw + 1, (), generator=gen))
        else:
            top, left = round((height - ch) / 2), round((width - cw) / 2)
        return image[:, top : top + ch, left : left + cw].contiguous()
