"""The model-file format: writing, reading, checking and bounding what a file may hold.

See :mod:`torchvae.io.serialization` for the format itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from .._version import __version__
from ._atomic import atomic_write, check_file
from ._safetensors import decode, encode, is_safetensors, place, saved_devices
from .registry import Config, compare_state, describe_config, from_config

__all__ = [
    "FORMAT_VERSION",
    "MAX_JSON_CHARS",
    "MAX_JSON_DEPTH",
    "Contents",
    "MapLocation",
    "PathLike",
    "SerializationError",
    "check_path",
    "check_sizes",
    "metadata_text",
    "read_file",
    "write_file",
]

FORMAT = "torchvae"
FORMAT_VERSION = 3
"""The file format this torchvae writes (3: safetensors); it reads versions up to this
(1 and 2: the ``torch.save`` files of earlier torchvae versions)."""
MAX_JSON_CHARS = 1 << 20
"""The longest config or metadata (in characters) a file may hold."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of lists and dicts a file's config or metadata may have."""

PathLike = str | os.PathLike[str]
MapLocation = (
    Callable[[Any, str], Any] | torch.device | str | dict[str, str] | None
)  # torch.load's map_location


class SerializationError(ValueError):
    """A model file cannot be read or does not fit: its message names the file and why."""


def _checksum(config: str | None, state: Mapping[str, Tensor], metadata: str | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(b"" if config is None else config.encode())
    for key in sorted(state):
        tensor = state[key].detach()
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        flat = tensor.to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().data)
    if metadata is not None:  # absent: the digest of a version-1 file, unchanged
        digest.update(f"\0metadata\0{len(metadata)}\0".encode() + metadata.encode())
    return digest.hexdigest()


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth(text: str) -> int:
    """How deeply ``text``'s lists and dicts nest (brackets inside strings ignored)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _json_problem(text: str) -> str | None:
    if len(text) > MAX_JSON_CHARS:
        return f"is {len(text)} characters long (at most {MAX_JSON_CHARS} are read)"
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        return f"nests {depth} levels deep (at most {MAX_JSON_DEPTH} are read)"
    return None


def _parse_json(text: str, path: Path, what: str) -> Any:
    problem = _json_problem(text)
    if problem is not None:
        raise SerializationError(f"{path} is corrupted or forged: its {what} {problem}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise SerializationError(f"{path} is corrupted: its {what} is not JSON ({e})") from e


def metadata_text(metadata: object) -> str:
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(
            f"metadata must be a dict with str keys (of JSON values), got {metadata!r:.200}"
        )
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must hold JSON values only ({e}): {metadata!r:.200}") from e
    problem = _json_problem(text)
    if problem is not None:
        raise ValueError(f"metadata {problem}, too large for a model file")
    return text


def check_path(path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def write_file(
    path: PathLike,
    config: Config | None,
    state: Mapping[str, Tensor],
    metadata: Mapping[str, Any] | None,
) -> None:
    text = None if config is None else json.dumps(config)
    extra = None if metadata is None else metadata_text(metadata)
    tensors = {k: v.detach() for k, v in state.items()}
    fields = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "torchvae_version": __version__,
        "sha256": _checksum(text, tensors, extra),
    }
    if text is not None:
        fields["config"] = text
    if extra is not None:
        fields["metadata"] = extra
    data = encode(tensors, fields)
    with atomic_write(check_path(path)) as f:
        _write(f, data)


def _write(f: BinaryIO, data: bytes) -> None:
    f.write(data)


@dataclass(frozen=True)
class Contents:
    config: Config | None
    state: dict[str, Tensor]
    metadata: dict[str, Any]


def _unpickling_problem(path: Path, error: Exception) -> SerializationError:
    detail = re.findall(r"(?:Trying to load|Unsupported)[^\n]*", str(error))
    reason = detail[0].strip() if detail else str(error).splitlines()[0]
    if "GLOBAL" in reason:
        return SerializationError(
            f"refusing to load {path}: it holds pickled Python objects other than tensors "
            f"and plain data ({reason}), and unpickling them could run arbitrary code. "
            f"Files written by torchvae never hold such objects, so this one was written "
            f"by other code or altered"
        )
    return SerializationError(
        f"cannot load {path}: it is corrupted or not a torchvae file (the safe unpickler "
        f"stopped at: {reason})"
    )


def _torch_load(path: Path, map_location: MapLocation) -> object:
    try:
        with warnings.catch_warnings():
            # Raised for hostile or foreign pickles, which are refused just below anyway.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise _unpickling_problem(path, e) from e
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except RuntimeError as e:
        message = str(e)
        if "deserialize object on" in message:
            raise SerializationError(
                f"cannot load {path} onto its saved device ({message.splitlines()[0]}); "
                f"pass map_location, e.g. map_location='cpu'"
            ) from e
        kind = "truncated or corrupted" + (
            "" if zipfile.is_zipfile(path) else ", or not a model file"
        )
        first = message.splitlines()[0].split(". ")[0]
        raise SerializationError(f"cannot load {path}: it is {kind} ({first})") from e
    except Exception as e:  # the reader fails on damaged bytes in many ways (EOF, KeyError, ...)
        raise SerializationError(
            f"cannot load {path}: it is truncated or corrupted ({type(e).__name__}: {e})"
        ) from e


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    )


def _safetensors_payload(
    path: Path, map_location: MapLocation, allow_bare: bool
) -> dict[str, Any] | Contents:
    try:
        fields, state = decode(path)
    except ValueError as e:
        raise SerializationError(
            f"cannot load {path}: it is truncated, corrupted or forged (its safetensors "
            f"header or data is malformed: {e})"
        ) from e
    if fields is None or "format" not in fields:
        if allow_bare and state:  # a plain safetensors state dict, e.g. from another library
            place(state, {}, "cpu" if map_location is None else map_location)
            return Contents(None, state, {})
        raise SerializationError(
            f"{path} is not a torchvae model file: it is a safetensors file without format "
            f"{FORMAT!r} (a bare state dict: build the model in code and call "
            f"load_weights(model, path))"
        )
    payload: dict[str, Any] = dict(fields)
    version = fields.get("format_version")
    payload["format_version"] = int(version) if version and _DIGITS.fullmatch(version) else version
    payload["state_dict"] = state
    try:
        payload["devices"] = saved_devices(fields)
    except ValueError as e:
        raise SerializationError(f"{path} is corrupted: {e}") from e
    return payload


_DIGITS = re.compile(r"[0-9]{1,9}")


def read_file(path: Path, map_location: MapLocation, allow_bare: bool) -> Contents:
    check_file(path, "model file")
    if is_safetensors(path):
        obj: object = _safetensors_payload(path, map_location, allow_bare)
        if isinstance(obj, Contents):
            return obj
    else:  # format versions 1 and 2: a torch.save zip, read with the safe unpickler
        obj = _torch_load(path, map_location)
    if allow_bare and _is_state_dict(obj) and obj:
        assert isinstance(obj, dict)
        return Contents(None, obj, {})
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        what = (
            "a bare state dict (as from torch.save(model.state_dict(), path)), with no "
            "architecture: build the model in code and call load_weights(model, path)"
            if _is_state_dict(obj)
            else f"a {type(obj).__name__} without format {FORMAT!r}"
        )
        raise SerializationError(f"{path} is not a torchvae model file: it holds {what}")
    version = obj.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SerializationError(f"{path} is corrupted: format_version is {version!r}")
    if version > FORMAT_VERSION:
        raise SerializationError(
            f"{path} has format version {version}, written by a newer torchvae "
            f"({obj.get('torchvae_version', 'unknown version')}); this torchvae "
            f"({__version__}) reads versions up to {FORMAT_VERSION}: upgrade torchvae"
        )
    text, state, stored = obj.get("config"), obj.get("state_dict"), obj.get("sha256")
    extra = obj.get("metadata")
    if not (text is None or isinstance(text, str)) or not _is_state_dict(state):
        raise SerializationError(f"{path} is corrupted: its config or state_dict is malformed")
    if not (extra is None or isinstance(extra, str)) or (extra is not None and version < 2):
        raise SerializationError(f"{path} is corrupted: its metadata entry is malformed")
    assert isinstance(state, dict)
    on_meta = any(t.is_meta for t in state.values())
    if not on_meta and stored != _checksum(text, state, extra):
        raise SerializationError(
            f"{path} is corrupted: its content does not match the SHA-256 checksum stored "
            f"when it was written"
        )
    config = None if text is None else _parse_json(text, path, "config")
    metadata = {} if extra is None else _parse_json(extra, path, "metadata")
    if not isinstance(metadata, dict):
        raise SerializationError(f"{path} is corrupted: its metadata is not a JSON object")
    if "devices" in obj:  # safetensors: verified on the CPU, now moved where asked
        try:
            place(state, obj["devices"], map_location)
        except RuntimeError as e:
            raise SerializationError(
                f"cannot load {path} onto its saved device ({str(e).splitlines()[0]}); "
                f"pass map_location, e.g. map_location='cpu'"
            ) from e
    return Contents(config, state, metadata)


def _integers(config: object) -> Iterator[tuple[str, int]]:
    """Every integer in a parsed config, with where it is (``encoder.hidden_dims[0]``)."""
    stack: list[tuple[str, object]] = [("config", config)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool):
            yield where, value


def check_sizes(path: Path, config: Config, state: Mapping[str, Tensor]) -> None:
    """Refuse configs asking for more than the file's tensors could hold, before any build."""
    largest = max((t.numel() for t in state.values()), default=0)
    for where, value in _integers(config):
        if value > largest:
            raise SerializationError(
                f"{path} is corrupted or forged: {where} = {value} is larger than any tensor "
                f"in the file (the largest holds {largest} values), so its architecture "
                f"cannot be what the file holds"
            )
    try:
        with torch.device("meta"):  # shapes without memory
            skeleton = from_config(config, "config")
    except (TypeError, ValueError) as e:
        raise SerializationError(f"{path} holds a config that cannot be built: {e}") from e
    except Exception:
        return  # a class that cannot be built on the meta device: the real build checks
    problems = compare_state(
        {k: tuple(v.shape) for k, v in skeleton.state_dict().items()},
        {k: tuple(v.shape) for k, v in state.items()},
    )
    if problems:
        raise SerializationError(
            f"{path} is inconsistent: its tensors do not fit the architecture in its own "
            f"config, {describe_config(config)} ({problems})"
        )
