"""Image arrays of any common layout and dtype, made ``(N, C, H, W)`` ``uint8`` (or float).

Shared by the tensor-file reader and the ``Dataset`` adapter: every reader hands the rest of
torchvae the same thing, whatever it was given.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["LAYOUTS", "Layout", "check_labels", "item_to_chw", "to_nchw", "to_pixels"]

Layout = Literal["NHW", "NHWC", "NCHW"]
LAYOUTS = ("NHW", "NHWC", "NCHW")
_CHANNELS = (1, 3)
_CHUNK = 8192  # examples per conversion step: bounds the temporary memory
# Float images whose 255 x lies this close to an integer came from 8-bit data.
_GRID_TOLERANCE = 1e-3


def to_nchw(images: Tensor, layout: str | None, what: str) -> Tensor:
    """``images`` as a contiguous ``(N, C, H, W)`` tensor.

    ``layout=None`` detects it: 3 axes are ``(N, H, W)``; 4 axes are ``(N, C, H, W)`` when
    axis 1 alone has 1 or 3 entries, ``(N, H, W, C)`` when axis 3 alone has.

    Raises:
        ValueError: an unknown or ambiguous layout, or a shape that fits none (the message
            names ``what`` and the shape, and how to say the layout).
    """
    shape = tuple(images.shape)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
    if layout is None:
        if images.dim() == 3:
            layout = "NHW"
        elif images.dim() == 4:
            first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
            if first == last:
                why = "both" if first else "neither"
                raise ValueError(
                    f"{what}: cannot tell the layout of images of shape {shape}: {why} of "
                    f"axes 1 and 3 look like 1 or 3 channels; pass layout='NCHW' or 'NHWC'"
                )
            layout = "NCHW" if first else "NHWC"
        else:
            raise ValueError(
                f"{what}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W), "
                f"got {shape}"
            )
    want = 3 if layout == "NHW" else 4
    if images.dim() != want:
        raise ValueError(f"{what}: layout {layout!r} needs {want} axes, got shape {shape}")
    if min(shape, default=0) == 0:
        raise ValueError(f"{what}: images must not be empty, got shape {shape}")
    if layout == "NHW":
        return images.unsqueeze(1).contiguous()
    if layout == "NHWC":
        return images.permute(0, 3, 1, 2).contiguous()
    return images.contiguous()


def to_pixels(images: Tensor, what: str) -> Tensor:
    """``images`` as ``uint8`` when they are 8-bit data, else as ``float32`` in [0, 1].

    ``uint8`` is kept; other integers must lie in 0..255; floats must be finite and in
    [0, 1], and become ``uint8`` (exactly, ``round(255 x)``) when every ``255 x`` is an
    integer up to float rounding (e.g. ``ToTensor``'s output), else stay ``float32``.

    Raises:
        TypeError: a dtype that is neither integer nor floating point (bool, complex).
        ValueError: values out of range, NaN or inf (the message gives the range found).
    """
    if images.dtype == torch.uint8:
        return images
    if images.dtype == torch.bool or images.is_complex():
        raise TypeError(
            f"{what}: images must be uint8 (0..255), integers in 0..255 or floats in [0, 1], "
            f"got dtype {images.dtype}"
        )
    if not images.is_floating_point():
        if images.dtype in (torch.uint16, torch.uint32, torch.uint64):
            images = images.to(torch.int64)  # few ops exist for these dtypes
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{what}: integer images must lie in 0..255, got values in [{low}, {high}]"
            )
        return images.to(torch.uint8)
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{what}: float images hold NaN or inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{what}: float images must lie in [0, 1], got values in [{lo:g}, {hi:g}]"
            + ("; divide 0..255 values by 255" if 1 < hi <= 255 else "")
        )
    out = torch.empty(images.shape, dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        scaled = images[start : start + _CHUNK].to(torch.float32).mul(255)
        rounded = scaled.round()
        if float((scaled - rounded).abs().max()) > _GRID_TOLERANCE:
            return images.to(torch.float32)  # continuous data: keep it
        out[start : start + _CHUNK] = rounded.to(torch.uint8)
    return out


def check_labels(labels: Tensor | None, n: int, what: str) -> Tensor | None:
    """``labels`` as ``int64`` of shape ``(n,)``, checked; ``None`` stays ``None``.

    Raises:
        TypeError: not integer labels.
        ValueError: a shape other than ``(n,)`` or negative labels.
    """
    if labels is None:
        return None
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(
            f"{what}: labels must have shape ({n},) to match the images, got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{what}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.to(torch.int64)
    if n and int(labels.min()) < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {int(labels.min())}")
    return labels


def item_to_chw(item: object, what: str) -> Tensor:
    """One image (tensor ``(H, W)``/``(C, H, W)``, array ``(H, W)``/``(H, W, C)``, PIL image)
    as a ``(C, H, W)`` tensor: ``uint8``, or ``float32`` for floats (checked in [0, 1]).

    Raises:
        TypeError: an item of another type.
        ValueError: a shape or value range that is not an image's.
    """
    if isinstance(item, Tensor):
        image = item
        if image.dim() == 2:
            image = image.unsqueeze(0)
    elif hasattr(item, "__array_interface__") or hasattr(item, "__array__"):
        import numpy as np  # PIL images and numpy arrays: both expose the array protocol

        image = torch.from_numpy(np.array(item))
        if image.dim() == 2:
            image = image.unsqueeze(0)
        elif image.dim() == 3:
            image = image.permute(2, 0, 1)
    else:
        raise TypeError(
            f"{what}: an image must be a torch.Tensor, a numpy array or a PIL image, got "
            f"{type(item).__name__}"
        )
    if image.dim() != 3 or min(image.shape) == 0:
        raise ValueError(
            f"{what}: an image must have shape (H, W) or (C, H, W) (tensors; (H, W, C) for "
            f"arrays), got {tuple(item.shape) if hasattr(item, 'shape') else image.shape}"
        )
    if image.dtype == torch.uint8:
        return image.contiguous()
    if image.is_floating_point():
        image = image.to(torch.float32)
        if not bool(torch.isfinite(image).all()) or float(image.min()) < 0 or image.max() > 1:
            raise ValueError(f"{what}: float images must be finite and in [0, 1]")
        return image.contiguous()
    return to_pixels(image.unsqueeze(0), what)[0].contiguous()
