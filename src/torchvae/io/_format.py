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
from typing import Any

import torch
from torch import Tensor

from .._version import __version__
from ._atomic import atomic_write, check_file
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
FORMAT_VERSION = 2
"""The newest file format this torchvae writes (2 for files with metadata, else 1); it
reads versions up to this."""
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
    payload = {
        "format": FORMAT,
        "format_version": 1 if extra is None else 2,
        "torchvae_version": __version__,
        "config": text,
        "state_dict": tensors,
        "sha256": _checksum(text, tensors, extra),
    }
    if extra is not None:
        payload["metadata"] = extra
    with atomic_write(check_path(path)) as f:
        torch.save(payload, f)


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
    check_file(path, "model file")
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


def read_file(path: Path, map_location: MapLocation, allow_bare: bool) -> Contents:
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
