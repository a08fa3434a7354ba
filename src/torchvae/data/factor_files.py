r"""The real dSprites and 3D Shapes data sets, read from files a user has.

Neither can be downloaded by torchvae; put the files in a folder and pass it as ``root``
(or set ``TORCHVAE_DATA_DIR``):

- dSprites (Matthey et al. 2017, DeepMind's ``dsprites-dataset`` repository):
  ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``, a NumPy archive with ``imgs``
  (737280, 64, 64) ``uint8`` in {0, 1}, ``latents_classes`` (737280, 6) ``int64`` and
  ``latents_values`` (737280, 6) ``float64``; the six latents are color (one class, dropped
  here), shape, scale, orientation, posX, posY. The archive is read as a stream, with no
  NumPy needed, and the images are kept packed eight pixels to a byte (377 MB instead of
  3 GB).
- 3D Shapes (Burgess & Kim 2018): ``3dshapes.h5``, an HDF5 file with ``images``
  (480000, 64, 64, 3) ``uint8`` and ``labels`` (480000, 6) ``float64``: floor hue, wall
  hue, object hue, scale, shape, orientation. Reading it needs ``h5py``
  (``pip install 'torchvae[factors]'``); images are read from the file when asked for
  (or all at once with ``in_memory=True``, 5.9 GB).

Factor classes are the sorted distinct values of each latent (dSprites' own
``latents_classes``), and the rows may come in any order: each data set maps every factor
combination to its row, and requires every combination exactly once.
"""

from __future__ import annotations

import ast
import os
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

from ._idx import DatasetNotFoundError
from .factors import FactorDataset, factor_classes, row_order
from .sprites import Sprites

__all__ = ["DSprites", "Shapes3D", "load_factor_dataset"]

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SHAPES3D_FILE = "3dshapes.h5"
_DSPRITES_NAMES = ("color", "shape", "scale", "rotation", "x", "y")
_SHAPES3D_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
_NPY_DTYPES = {
    "u1": torch.uint8,
    "i1": torch.int8,
    "i2": torch.int16,
    "i4": torch.int32,
    "i8": torch.int64,
    "f4": torch.float32,
    "f8": torch.float64,
}
_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def find_file(root: str | os.PathLike[str] | None, filename: str, title: str, how: str) -> Path:
    """``root`` when it is a file, else ``filename`` in ``root``, ``$TORCHVAE_DATA_DIR``, ``.``."""
    folders = []
    if root is not None:
        if Path(root).is_file():
            return Path(root)
        folders.append(Path(root))
    env = os.environ.get("TORCHVAE_DATA_DIR")
    if env:
        folders.append(Path(env))
    folders.append(Path("."))
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    looked = ", ".join(str(f / filename) for f in folders)
    raise DatasetNotFoundError(
        f"{title} not found (looked for {looked}); torchvae cannot download it: {how}, "
        f"and pass its folder as root= or set TORCHVAE_DATA_DIR"
    )


def _npy_header(f: IO[bytes], source: str) -> tuple[tuple[int, ...], torch.dtype]:
    magic = f.read(8)
    if magic[:6] != b"\x93NUMPY":
        raise ValueError(f"{source} is not a .npy array")
    size_bytes = 2 if magic[6] == 1 else 4
    (length,) = struct.unpack("<H" if size_bytes == 2 else "<I", f.read(size_bytes))
    header: Any = ast.literal_eval(f.read(length).decode("latin1"))
    descr = str(header.get("descr", ""))
    if header.get("fortran_order") or descr[:1] not in "<|" or descr[1:] not in _NPY_DTYPES:
        raise ValueError(
            f"{source}: unsupported array layout {header} (need C order, little-endian "
            f"{sorted(_NPY_DTYPES)})"
        )
    return tuple(int(s) for s in header["shape"]), _NPY_DTYPES[descr[1:]]


def _read_member(archive: zipfile.ZipFile, name: str, source: str) -> Tensor:
    with archive.open(f"{name}.npy") as f:
        shape, dtype = _npy_header(f, f"{source}:{name}")
        data = bytearray(f.read())
    tensor = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
    return tensor.reshape(shape)


def _read_packed_images(archive: zipfile.ZipFile, source: str, rows: int = 8192) -> Tensor:
    """``imgs`` as ``(N, 64, 8)`` bytes, eight pixels each, decompressed ``rows`` at a time."""
    with archive.open("imgs.npy") as f:
        shape, dtype = _npy_header(f, f"{source}:imgs")
        if dtype != torch.uint8 or len(shape) != 3 or shape[2] % 8:
            raise ValueError(
                f"{source}: imgs must be uint8 of shape (N, H, W) with W a multiple of 8, "
                f"got {dtype} {shape}"
            )
        n, h, w = shape
        packed = torch.empty(n, h, w // 8, dtype=torch.uint8)
        for start in range(0, n, rows):
            count = min(rows, n - start)
            raw = f.read(count * h * w)
            if len(raw) != count * h * w:
                raise ValueError(f"{source}: imgs is truncated at image {start}")
            bits = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(count, h, w // 8, 8)
            packed[start : start + count] = ((bits != 0).to(torch.uint8) * _BITS).sum(
                dim=3, dtype=torch.uint8
            )
    return packed


class DSprites(FactorDataset):
    """The real dSprites, read from its ``.npz`` (see the module notes).

    Factors: ``("shape", "scale", "rotation", "x", "y")`` with sizes ``(3, 6, 40, 32,
    32)`` for the real file (factors with a single class, such as color, are dropped);
    images ``(1, 64, 64)``, 0 or 255 as ``uint8``.

    Args:
        root: The ``.npz`` file itself or its folder; ``None`` looks in
            ``$TORCHVAE_DATA_DIR`` and the current folder.

    Raises:
        DatasetNotFoundError: The file is nowhere; the message says where it looked.
        ValueError: The archive lacks ``imgs`` or ``latents_classes``, or they disagree.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.path = find_file(
            root, DSPRITES_FILE, "dSprites", "get it from DeepMind's dsprites-dataset repository"
        )
        source = str(self.path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = set(archive.namelist())
                for key in ("imgs", "latents_classes"):
                    if f"{key}.npy" not in members:
                        raise ValueError(f"{source} has no array {key!r} (found {sorted(members)})")
                classes = _read_member(archive, "latents_classes", source).long()
                packed = _read_packed_images(archive, source)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{source} is not a NumPy .npz archive: {e}") from e
        if classes.dim() != 2 or classes.shape[0] != packed.shape[0]:
            raise ValueError(
                f"{source}: latents_classes {tuple(classes.shape)} does not match "
                f"{packed.shape[0]} images"
            )
        names = _DSPRITES_NAMES if classes.shape[1] == 6 else None
        classes, sizes = factor_classes(classes, names or [""] * classes.shape[1], source)
        keep = [k for k, s in enumerate(sizes) if s > 1]
        if not keep:
            raise ValueError(f"{source}: no factor varies (every latent has a single class)")
        all_names = names or tuple(f"factor{k}" for k in range(len(sizes)))
        self.factor_names = tuple(all_names[k] for k in keep)
        self.factor_sizes = tuple(sizes[k] for k in keep)
        self.image_shape = (1, packed.shape[1], packed.shape[2] * 8)
        self._order = row_order(classes[:, keep], self.factor_sizes, source)
        self._packed = packed

    def images_at(self, index: Tensor) -> Tensor:
        """The images at ``index``: ``uint8`` ``(n, 1, 64, 64)``, 0 or 255."""
        packed = self._packed.index_select(0, self._order[self._check_index(index)])
        bits = (packed.unsqueeze(-1) & _BITS) != 0
        return bits.to(torch.uint8).mul_(255).reshape(-1, *self.image_shape)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "reading 3D Shapes (.h5) needs h5py, an optional dependency: "
            "pip install 'torchvae[factors]'"
        ) from e
    return h5py


class Shapes3D(FactorDataset):
    """3D Shapes, read from its ``.h5`` (needs ``h5py``: ``pip install 'torchvae[factors]'``).

    Factors: ``("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")``
    with sizes ``(10, 10, 10, 8, 4, 15)`` for the real file; images ``(3, 64, 64)`` RGB
    ``uint8`` (channels first).

    Args:
        root: The ``.h5`` file itself or its folder; ``None`` looks in
            ``$TORCHVAE_DATA_DIR`` and the current folder.
        in_memory: Read every image at once (5.9 GB for the real file) instead of from
            the file when asked for.

    Raises:
        ImportError: h5py is not installed (the message names the extra).
        DatasetNotFoundError: The file is nowhere; the message says where it looked.
        ValueError: The file lacks ``images`` or ``labels``, or their shapes disagree.
    """

    factor_names = _SHAPES3D_NAMES

    def __init__(self, root: str | os.PathLike[str] | None = None, in_memory: bool = False) -> None:
        h5py = _h5py()
        self.path = find_file(
            root, SHAPES3D_FILE, "3D Shapes", "get 3dshapes.h5 from DeepMind's 3d-shapes page"
        )
        source = str(self.path)
        with h5py.File(self.path, "r") as f:
            for key in ("images", "labels"):
                if key not in f:
                    raise ValueError(f"{source} has no dataset {key!r} (found {sorted(f.keys())})")
            shape = tuple(f["images"].shape)
            labels = torch.as_tensor(f["labels"][()], dtype=torch.float64)
            self._images = (
                torch.as_tensor(f["images"][()]).permute(0, 3, 1, 2).contiguous()
                if in_memory
                else None
            )
        if len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"{source}: images must be (N, H, W, 3), got {shape}")
        if labels.dim() != 2 or labels.shape != (shape[0], 6):
            raise ValueError(f"{source}: labels must be ({shape[0]}, 6), got {tuple(labels.shape)}")
        classes, self.factor_sizes = factor_classes(labels, self.factor_names, source)
        self.image_shape = (3, shape[1], shape[2])
        self._order = row_order(classes, self.factor_sizes, source)

    def images_at(self, index: Tensor) -> Tensor:
        """The images at ``index``: ``uint8`` ``(n, 3, 64, 64)``."""
        rows = self._order[self._check_index(index)]
        if self._images is not None or rows.numel() == 0:
            if self._images is None:
                return torch.empty(0, *self.image_shape, dtype=torch.uint8)
            return self._images.index_select(0, rows)
        unique, inverse = torch.unique(rows, sorted=True, return_inverse=True)
        with _h5py().File(self.path, "r") as f:
            data = torch.as_tensor(f["images"][unique.numpy()])
        return data.permute(0, 3, 1, 2).index_select(0, inverse).contiguous()


def load_factor_dataset(
    name: str = "sprites", root: str | os.PathLike[str] | None = None
) -> FactorDataset:
    """A factor data set by name: ``"sprites"`` (generated), ``"dsprites"`` or ``"shapes3d"``.

    Args:
        name: Which.
        root: The file or folder of ``"dsprites"`` and ``"shapes3d"`` (unused for
            ``"sprites"``).

    Returns:
        The :class:`~torchvae.FactorDataset`; ``.tensors(n=...)`` gives ``uint8`` images
        and factors for a :class:`~torchvae.TensorLoader`.

    Example:
        >>> images, factors = load_factor_dataset("sprites").tensors(n=4)
        >>> images.shape, factors.shape
        (torch.Size([4, 1, 64, 64]), torch.Size([4, 5]))
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key == "sprites":
        return Sprites()
    if key == "dsprites":
        return DSprites(root)
    if key in ("shapes3d", "3dshapes"):
        return Shapes3D(root)
    raise ValueError(
        f"unknown factor data set {name!r}; choose 'sprites', 'dsprites' or 'shapes3d'"
    )
