"""The safetensors container of model files: a JSON header of tensor offsets, then bytes.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range (plus a ``__metadata__`` dict of strings), then the
raw tensor bytes. Nothing in it is code, and the header is parsed and bounded by the
``safetensors`` library (offsets inside the file, no overlaps, sizes that match shapes)
before any tensor is made. torchvae keeps its own fields in ``__metadata__``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _save_bytes
from torch import Tensor

__all__ = ["decode", "encode", "is_safetensors", "place", "saved_devices"]

_HEADER_START = b"{"
_MAX_HEADER = 100_000_000  # the safetensors library's own bound on a header's length


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (a length, then a JSON object)."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != _HEADER_START:
        return False
    return 0 < int.from_bytes(head[:8], "little") <= _MAX_HEADER


def encode(state: Mapping[str, Tensor], fields: Mapping[str, str]) -> bytes:
    """The bytes of a safetensors file holding ``state`` on the CPU and ``fields``.

    Tensors that share memory (tied weights, views) or are not contiguous are copied,
    as safetensors stores each tensor's own bytes; their devices go in ``"devices"``.
    """
    tensors: dict[str, Tensor] = {}
    devices: dict[str, str] = {}
    seen: set[int] = set()
    for key, value in state.items():
        tensor = value.detach()
        if tensor.device.type != "cpu":
            devices[key] = str(tensor.device)
            tensor = tensor.to("cpu")
        storage = tensor.untyped_storage()
        whole = storage.nbytes() == tensor.numel() * tensor.element_size()
        if tensor.numel() and (
            not tensor.is_contiguous() or not whole or storage.data_ptr() in seen
        ):
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        if tensor.numel():
            seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    header = dict(fields)
    if devices:
        header["devices"] = json.dumps(devices)
    return bytes(_save_bytes(tensors, metadata=header))


def decode(path: Path) -> tuple[dict[str, str] | None, dict[str, Tensor]]:
    """The ``__metadata__`` (``None`` if absent) and the tensors of ``path``, on the CPU.

    Raises:
        ValueError: the file's header is malformed, forged or cut short, naming why.
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            fields = f.metadata()
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except SafetensorError as e:
        raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    except (OSError, RuntimeError, OverflowError, MemoryError) as e:
        if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise ValueError(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if fields is not None and not (
        isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
    ):
        raise ValueError("its __metadata__ is not a dict of strings")
    return fields, tensors


_DEVICE = re.compile(r"[a-z_]+(:\d{1,4})?")


def saved_devices(fields: Mapping[str, str]) -> dict[str, str]:
    """Where each tensor was when saved (``"devices"``; absent: all on the CPU)."""
    text = fields.get("devices")
    if text is None:
        return {}
    if len(text) > (1 << 20):
        raise ValueError("its devices entry is too long")
    try:
        devices = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"its devices entry is not JSON ({e})") from e
    if not isinstance(devices, dict) or not all(
        isinstance(v, str) and _DEVICE.fullmatch(v) for v in devices.values()
    ):
        raise ValueError("its devices entry is not a dict of device names")
    return devices


def place(tensors: dict[str, Tensor], devices: Mapping[str, str], map_location: Any) -> None:
    """Move ``tensors`` (in place) as ``torch.load``'s ``map_location`` would.

    ``None`` puts each tensor back on its saved device; a device or a device string puts
    them all there; a dict maps saved device names to new ones; a callable gets
    ``(storage, saved_device)`` and returns the storage to use (or ``None`` to keep it).

    Raises:
        RuntimeError: a device is unavailable (torch's message).
    """
    for key, tensor in tensors.items():
        saved = devices.get(key, "cpu")
        if map_location is None:
            target: Any = saved
        elif isinstance(map_location, str | torch.device):
            target = map_location
        elif isinstance(map_location, dict):
            target = map_location.get(saved, saved)
        else:
            storage = map_location(tensor.untyped_storage(), saved)
            if storage is not None:
                moved = torch.empty(0, dtype=tensor.dtype, device=storage.device)
                tensors[key] = moved.set_(storage, 0, tensor.shape, tensor.stride())
            continue
        if torch.device(target) != tensor.device:
            tensors[key] = tensor.to(target)
