"""Images saved as one tensor file: ``.npy``, ``.npz`` or ``.pt``.

What a file may hold:

- ``.npy``: one array of images (read with ``allow_pickle=False``).
- ``.npz``: arrays by name; the images under ``images``, ``x``, ``data`` or ``arr_0`` (or
  the only array) and the labels, if any, under ``labels``, ``y``, ``targets`` or ``arr_1``
  (``np.savez(f, images=..., labels=...)``).
- ``.pt``: a tensor, a ``(images, labels)`` tuple, or a dict of tensors with the names
  above, read with ``torch.load(weights_only=True)``, which runs no code from the file.

A file holds both splits when it has ``train_images`` and ``test_images`` (or ``x_train``
and ``x_test``, ``train_x`` and ``test_x``), with labels named alike (``train_labels``,
``y_train``, ``train_y``). Names can be given with ``images_key`` and ``labels_key``, and
``"{split}"`` in a name is replaced by ``train`` or ``test`` (``images_key="x_{split}"``).

Images are ``uint8`` 0..255 or floats in [0, 1], in the layout ``(N, H, W)``,
``(N, H, W, C)`` or ``(N, C, H, W)``, detected from the shape (1 or 3 channels) or given as
``layout``. Float images that are 8-bit data (every :math:`255 x` an integer, such as
``ToTensor``'s output) are stored as ``uint8``; other float images stay ``float32``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ._pixels import check_labels, to_nchw, to_pixels

__all__ = ["TENSOR_FILE_SUFFIXES", "read_tensor_file"]

#: The file name endings :func:`read_tensor_file` reads.
TENSOR_FILE_SUFFIXES = (".npy", ".npz", ".pt", ".pth")

_IMAGE_KEYS = ("images", "x", "data", "arr_0")
_LABEL_KEYS = ("labels", "y", "targets", "arr_1")
_SPLIT_IMAGE_KEYS = ("{split}_images", "x_{split}", "{split}_x", "images_{split}")
_SPLIT_LABEL_KEYS = ("{split}_labels", "y_{split}", "{split}_y", "labels_{split}")


def read_tensor_file(
    path: str | os.PathLike[str],
    layout: str | None = None,
    images_key: str | None = None,
    labels_key: str | None = None,
) -> dict[str, tuple[Tensor, Tensor | None]]:
    """Read images (and labels) from a ``.npy``, ``.npz`` or ``.pt`` file.

    Args:
        path: The file; its ending says how to read it.
        layout: ``"NHW"``, ``"NHWC"`` or ``"NCHW"``; ``None`` detects it from the shape.
        images_key: The name of the images in a ``.npz`` or ``.pt`` dict (``"{split}"`` is
            replaced by each split's name); ``None`` tries the usual names.
        labels_key: The name of the labels, likewise; ``None`` tries the usual names and
            finds none when there are none.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}`` for a file that holds
        both splits, else ``{"all": (images, labels)}``: images ``(N, C, H, W)``,
        ``uint8`` (or ``float32`` in [0, 1] for continuous data), labels ``int64`` of
        shape ``(N,)`` or ``None``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unknown file ending, a file that cannot be read (the message says
            why), missing names, bad shapes or value ranges.
        TypeError: images or labels of an unsupported dtype.

    Example:
        >>> import tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "faces.npz")
        >>> np.savez(path, images=np.zeros((5, 8, 8, 3), np.uint8), labels=np.arange(5))
        >>> images, labels = read_tensor_file(path)["all"]
        >>> tuple(images.shape), images.dtype, labels.tolist()
        ((5, 3, 8, 8), torch.uint8, [0, 1, 2, 3, 4])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tensor file at {path}")
    suffix = path.suffix.lower()
    if suffix not in TENSOR_FILE_SUFFIXES:
        raise ValueError(
            f"{path}: a tensor file must end in one of {TENSOR_FILE_SUFFIXES}, got {suffix!r}"
        )
    content = _load(path, suffix)
    if isinstance(content, Tensor):
        if images_key is not None or labels_key is not None:
            raise ValueError(f"{path} holds one array, not named ones: images_key does not apply")
        return {"all": _checked(path, "", content, None, layout)}
    keys = {s: _find(content, images_key, _SPLIT_IMAGE_KEYS, s) for s in ("train", "test")}
    if keys["train"] is not None and keys["test"] is not None:
        return {
            s: _checked(path, s, content[k], _labels(content, labels_key, s), layout)
            for s, k in keys.items()
            if k is not None
        }
    key = _find(content, images_key, _IMAGE_KEYS, None)
    arrays = sorted(content)
    if key is None and images_key is None and len(arrays) == 1:
        key = arrays[0]
    if key is None:
        wanted = repr(images_key) if images_key else " or ".join(map(repr, _IMAGE_KEYS))
        raise ValueError(
            f"{path}: no images under {wanted}; it holds {arrays}. Pass images_key (and "
            "labels_key) to name them"
        )
    labels = _labels(content, labels_key, None)
    if labels_key is not None and labels is None:
        raise ValueError(f"{path}: no labels under {labels_key!r}; it holds {arrays}")
    return {"all": _checked(path, "", content[key], labels, layout)}


def _find(
    content: Mapping[str, Tensor], given: str | None, names: tuple[str, ...], split: str | None
) -> str | None:
    """The first of ``given`` (else ``names``) present in ``content``, for ``split``.

    For a split, only names holding ``"{split}"`` count, with the split's name put in.
    """
    for name in (given,) if given is not None else names:
        if split is not None and "{split}" not in name:
            continue
        key = name.replace("{split}", split or "")
        if key in content:
            return key
    return None


def _labels(content: Mapping[str, Tensor], given: str | None, split: str | None) -> Tensor | None:
    key = _find(content, given, _SPLIT_LABEL_KEYS if split else _LABEL_KEYS, split)
    return None if key is None else content[key]


def _load(path: Path, suffix: str) -> Tensor | dict[str, Tensor]:
    import numpy as np

    try:
        if suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            # names, strings and the like are not images or labels: leave them out
            return {k: torch.from_numpy(a) for k, a in arrays.items() if a.dtype.kind in "biuf"}
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (
        ValueError,
        RuntimeError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as exc:
        how = "torch.load(weights_only=True)" if suffix in (".pt", ".pth") else "numpy"
        raise ValueError(f"{path}: cannot be read by {how}: {exc}") from exc
    if isinstance(content, Tensor):
        return content
    if isinstance(content, (tuple, list)) and 1 <= len(content) <= 2:
        content = dict(zip(("images", "labels"), content, strict=False))
    if isinstance(content, Mapping) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in content.items()
    ):
        return dict(content)
    raise ValueError(
        f"{path}: a .pt file must hold a tensor, an (images, labels) tuple or a dict of "
        f"tensors, got {type(content).__name__}"
    )


def _checked(
    path: Path, split: str, images: Tensor, labels: Tensor | None, layout: str | None
) -> tuple[Tensor, Tensor | None]:
    what = f"{path}" + (f" ({split})" if split else "")
    pixels = to_pixels(to_nchw(images, layout, what), what)
    return pixels, check_labels(labels, len(pixels), what)
