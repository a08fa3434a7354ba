r"""Model files: one file per model, a JSON config plus tensors, no pickled code.

:func:`save_model` writes a model so that :func:`load_model` can rebuild it with no
Python code at hand: the file holds the architecture as a JSON config (for example
``{"type": "Encoder", "input_dim": 784, "hidden_dims": [400, 400], "latent_dim": 20}``)
and the tensors of its ``state_dict``. :func:`save_weights` and :func:`load_weights` do
the same for the weights of any module, built-in or not, whose architecture the user
builds in code.

**The format.** A file is what ``torch.save`` writes for the dict

.. code-block:: text

    {"format": "torchvae", "format_version": 1, "torchvae_version": "0.1.0",
     "config": "<JSON string, or None for a weights-only file>",
     "state_dict": {name: tensor, ...}, "sha256": "<hex digest>"}

plus, in format version 2, ``"metadata": "<JSON string>"``: what the writer chose to
record beside the model (for ``torchvae train``: the data set, image shape, binarization
and run settings), read back with :func:`read_metadata`. Files without metadata are
written as version 1, which older torchvae versions read.

and it is read with ``torch.load(..., weights_only=True)``, whose unpickler accepts
tensors, strings, numbers, lists and dicts only, so a file from someone else cannot run
code on load. That choice over a hand-made zip of ``config.json`` and raw tensors keeps
one well-tested reader (``torch.load``: any dtype, ``map_location``, zip container)
while the config stays plain JSON, readable without torch. The SHA-256 digest covers the
config, the metadata and every tensor's name, dtype, shape and bytes: the zip container
alone does not notice a flipped bit inside a tensor. It detects corruption, not tampering
(anyone can recompute it); safety against hostile files comes from the restricted
unpickler and from bounds on what a file may ask for: its JSON is at most
:data:`MAX_JSON_CHARS` characters and :data:`MAX_JSON_DEPTH` levels deep, no size in its
config exceeds the largest tensor it holds, and the architecture is first built on the
meta device (no memory) and compared with the file's tensors, so a forged config cannot
make :func:`load_model` allocate more than the file's own tensors. A reader refuses
format versions newer than its own.

**Writes are atomic**: the file is written to a temporary file in the same folder,
flushed to disk and renamed over ``path``, so a process killed mid-write leaves the
previous file intact.

**Which models.** :class:`~torchvae.VAE` made of :class:`~torchvae.Encoder`,
:class:`~torchvae.Decoder`, :class:`~torchvae.ConvEncoder` and
:class:`~torchvae.ConvDecoder`, with the default ``LeakyReLU(0.2)`` activation; other
classes can be added with :func:`register_serializable`.

Example:
    >>> import tempfile, pathlib, torch
    >>> from torchvae import VAE, Encoder, Decoder
    >>> model = VAE(Encoder(784, 64, 8), Decoder(8, 64, 784)).eval()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vae.pt"
    >>> save_model(model, path)
    >>> loaded = load_model(path).eval()
    >>> x = torch.rand(2, 784)
    >>> torch.equal(model.reconstruct(x), loaded.reconstruct(x))
    True
    >>> model_config(model)["encoder"]
    {'type': 'Encoder', 'input_dim': 784, 'hidden_dims': [64, 64], 'latent_dim': 8}
"""

from __future__ import annotations

import contextlib
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
from typing import Any, TypeVar, overload

import torch
from torch import Tensor, nn

from ._io import atomic_write, check_file
from .code_prior import PixelCNNPrior
from .codebook import Codebook
from .conditional import ConditionalVAE
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .likelihoods import Bernoulli, ContinuousBernoulli, Gaussian
from .model import VAE
from .posteriors import DiagonalGaussian, FlowPosterior
from .priors import FlowPrior, MixturePrior, StandardNormal, VampPrior
from .samplers import GaussianMixtureSampler
from .vqnets import VQDecoder, VQEncoder
from .vqvae import VQVAE

__all__ = [
    "FORMAT_VERSION",
    "MAX_JSON_CHARS",
    "MAX_JSON_DEPTH",
    "SerializationError",
    "load_model",
    "load_weights",
    "model_config",
    "model_from_config",
    "read_metadata",
    "register_serializable",
    "save_model",
    "save_weights",
]

FORMAT = "torchvae"
FORMAT_VERSION = 2
"""The newest file format this torchvae writes (2 for files with metadata, else 1); it
reads versions up to this."""
MAX_JSON_CHARS = 1 << 20
"""The longest config or metadata (in characters) a file may hold."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of lists and dicts a file's config or metadata may have."""

M = TypeVar("M", bound=nn.Module)
PathLike = str | os.PathLike[str]
MapLocation = (
    Callable[[Any, str], Any] | torch.device | str | dict[str, str] | None
)  # torch.load's map_location
Config = dict[str, Any]


class SerializationError(ValueError):
    """A model file cannot be read or does not fit: its message names the file and why."""


@dataclass(frozen=True)
class _Codec:
    name: str
    cls: type[nn.Module]
    to_config: Callable[[Any], Config]
    from_config: Callable[[Config], nn.Module]


_BY_NAME: dict[str, _Codec] = {}
_BY_TYPE: dict[type[nn.Module], _Codec] = {}


def register_serializable(
    cls: type[M],
    to_config: Callable[[M], Config],
    from_config: Callable[[Config], M],
    name: str | None = None,
) -> None:
    """Let :func:`save_model` and :func:`load_model` handle modules of class ``cls``.

    ``to_config(module)`` returns the keyword arguments that rebuild ``module``'s
    architecture, as a dict of JSON values; a value may also be a submodule, which is
    serialized recursively (as a dict with a ``"type"`` key). ``from_config(config)``
    rebuilds the module from that dict, submodules already rebuilt. Only registered
    ``from_config`` functions ever run on load: a file chooses which by name, never
    supplies code. Exact classes only: a subclass of ``cls`` needs its own entry.

    Args:
        cls: the module class.
        to_config: module -> config dict.
        from_config: config dict -> new module (random weights; they are loaded after).
        name: the name stored in files; default ``cls.__qualname__``.

    Raises:
        TypeError: ``cls`` is not an ``nn.Module`` subclass, or a function is not callable.
        ValueError: ``name`` is already registered for a different class.

    Example:
        >>> class Scale(nn.Module):
        ...     def __init__(self, n: int) -> None:
        ...         super().__init__()
        ...         self.n, self.w = n, nn.Parameter(torch.ones(n))
        >>> register_serializable(Scale, lambda m: {"n": m.n}, lambda c: Scale(c["n"]))
        >>> model_config(Scale(3))
        {'type': 'Scale', 'n': 3}
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"cls must be a subclass of torch.nn.Module, got {cls!r}")
    for arg, fn in (("to_config", to_config), ("from_config", from_config)):
        if not callable(fn):
            raise TypeError(f"{arg} must be callable, got {type(fn).__name__}")
    name = cls.__qualname__ if name is None else name
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    known = _BY_NAME.get(name)
    if known is not None and known.cls is not cls:
        raise ValueError(
            f"name {name!r} is already registered for {known.cls.__module__}."
            f"{known.cls.__qualname__}; pass another name"
        )
    old = _BY_TYPE.get(cls)
    if old is not None:
        del _BY_NAME[old.name]
    codec = _Codec(name, cls, to_config, from_config)
    _BY_NAME[name] = _BY_TYPE[cls] = codec


def _not_serializable(module: nn.Module, where: str) -> TypeError:
    builtins = ", ".join(sorted(_BY_NAME))
    return TypeError(
        f"{where} is a {type(module).__module__}.{type(module).__qualname__}, which "
        f"save_model cannot rebuild from a config (it can: {builtins}). Save its weights "
        f"instead with save_weights(model, path) (or torch.save(model.state_dict(), path)), "
        f"rebuild the model in code and call load_weights(model, path); or teach save_model "
        f"the class with register_serializable"
    )


def _to_config(module: nn.Module, where: str) -> Config:
    codec = _BY_TYPE.get(type(module))
    if codec is None:
        raise _not_serializable(module, where)
    config: Config = {"type": codec.name}
    for key, value in codec.to_config(module).items():
        config[key] = _to_config(value, f"{where}.{key}") if isinstance(value, nn.Module) else value
    return config


def model_config(model: nn.Module) -> Config:
    """The JSON-ready config from which :func:`model_from_config` rebuilds ``model``.

    Args:
        model: a module of a registered class (see :func:`register_serializable`).

    Returns:
        A dict of JSON values with a ``"type"`` key, submodules nested the same way.

    Raises:
        TypeError: ``model`` or one of its parts is not of a registered class; the
            message names the part and what to do instead.

    Example:
        >>> model_config(Decoder(8, [32], 784))
        {'type': 'Decoder', 'latent_dim': 8, 'hidden_dims': [32], 'output_dim': 784}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    config = _to_config(model, "model")
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"the config of model is not plain JSON ({e}): {config!r}") from e
    return config


def _from_config(config: object, where: str) -> nn.Module:
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise ValueError(f"{where} must be a dict with a str 'type' key, got {config!r}")
    codec = _BY_NAME.get(config["type"])
    if codec is None:
        raise ValueError(
            f"{where} has unknown type {config['type']!r}; known types: "
            f"{', '.join(sorted(_BY_NAME))} (others need register_serializable)"
        )
    kwargs = {
        key: _from_config(value, f"{where}.{key}")
        if isinstance(value, dict) and "type" in value
        else value
        for key, value in config.items()
        if key != "type"
    }
    try:
        module = codec.from_config(kwargs)
    except KeyError as e:
        raise ValueError(f"{where} ({codec.name}) lacks the key {e}") from e
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} ({codec.name}) is not a valid config: {e}") from e
    if type(module) is not codec.cls:
        raise TypeError(
            f"from_config of {codec.name} returned a {type(module).__name__}, "
            f"not a {codec.cls.__name__}"
        )
    return module


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build a new model (random weights) from a config made by :func:`model_config`.

    Args:
        config: a dict with a ``"type"`` key naming a registered class.

    Returns:
        The module, in the default dtype on the CPU.

    Raises:
        ValueError: the config names an unknown type, lacks a key or holds a bad value.

    Example:
        >>> model_from_config({"type": "ConvEncoder", "latent_dim": 4,
        ...                    "input_shape": [1, 8, 8], "channels": [2]}).latent_dim
        4
    """
    return _from_config(dict(config), "config")


def _describe(config: object) -> str:
    if isinstance(config, dict) and isinstance(config.get("type"), str):
        args = ", ".join(f"{k}={_describe(v)}" for k, v in config.items() if k != "type")
        return f"{config['type']}({args})"
    return json.dumps(config)


def _structure(module: nn.Module) -> list[tuple[str, str]]:
    return [
        (name, f"{type(m).__name__}({m.extra_repr()})")
        for name, m in module.named_modules()
        if name  # the root's own repr spells out its children
    ]


def _check_rebuilds(model: nn.Module, config: Config) -> None:
    """Raise unless ``config`` rebuilds ``model``'s exact layers and tensor shapes."""
    # Built on the CPU: the meta device would avoid the allocation but its first use
    # imports torch's reference kernels, which costs seconds.
    rebuilt = _from_config(config, "config")
    ours, theirs = _structure(model), _structure(rebuilt)
    for (name, have), (name2, want) in zip(ours, theirs, strict=False):
        if (name, have) != (name2, want):
            activation = "LeakyReLU" in have + want
            raise TypeError(
                f"model.{name} is {have} but the architecture rebuilt from its config has "
                f"model.{name2} = {want}; "
                + (
                    "a custom activation cannot be serialized (only the default LeakyReLU(0.2) can)"
                    if activation
                    else "layers changed after construction cannot be serialized"
                )
                + ". Save the weights with save_weights(model, path) and rebuild the model "
                "in code, then load_weights(model, path)"
            )
    if len(ours) != len(theirs):
        extra = ours[len(theirs) :] or theirs[len(ours) :]
        raise TypeError(
            f"model has {len(ours)} submodules but its config rebuilds {len(theirs)} "
            f"(first difference: {extra[0][0]}); save the weights with save_weights instead"
        )
    problems = _compare_state(
        {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()},
        {k: tuple(v.shape) for k, v in model.state_dict().items()},
        ("rebuilt", "model"),
    )
    if problems:
        raise TypeError(
            f"model's tensors differ from those its config rebuilds ({problems}); "
            f"save the weights with save_weights instead"
        )


def _list(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _compare_state(
    want: Mapping[str, tuple[int, ...]],
    got: Mapping[str, tuple[int, ...]],
    labels: tuple[str, str] = ("model", "file"),
) -> str:
    """Describe missing, unexpected and shape-mismatched keys of ``got`` vs ``want``."""
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    shapes = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing from the {labels[1]}: {_list(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the {labels[0]}: {_list(unexpected)}")
    if shapes:
        detail = [f"{k} {labels[0]} {want[k]} vs {labels[1]} {got[k]}" for k in shapes]
        parts.append(f"{len(shapes)} with different shapes: {_list(detail)}")
    return "; ".join(parts)


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


def _metadata_text(metadata: object) -> str:
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


def _check_path(path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _write(
    path: PathLike,
    config: Config | None,
    state: Mapping[str, Tensor],
    metadata: Mapping[str, Any] | None,
) -> None:
    import torchvae

    text = None if config is None else json.dumps(config)
    extra = None if metadata is None else _metadata_text(metadata)
    tensors = {k: v.detach() for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "format_version": 1 if extra is None else 2,
        "torchvae_version": torchvae.__version__,
        "config": text,
        "state_dict": tensors,
        "sha256": _checksum(text, tensors, extra),
    }
    if extra is not None:
        payload["metadata"] = extra
    with atomic_write(_check_path(path)) as f:
        torch.save(payload, f)


def save_model(model: nn.Module, path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s architecture and weights to ``path``, atomically.

    Args:
        model: a :class:`~torchvae.VAE` of built-in encoders and decoders (or of classes
            added with :func:`register_serializable`), any dtype and device.
        path: the file to write; its folder must exist. An existing file is replaced
            only once the new one is complete.
        metadata: optional facts to keep with the model, as a dict of JSON values (for
            example what it was trained on: ``{"dataset": "fashion-mnist",
            "image_shape": [1, 28, 28]}``); covered by the file's checksum and read back
            with :func:`read_metadata`.

    Raises:
        TypeError: ``path`` is not a path, ``metadata`` is not a dict of JSON values, or
            ``model`` cannot be rebuilt from a config (a user-written module, a custom
            activation, layers replaced after construction): the message names the part
            and suggests :func:`save_weights`.
        ValueError: ``metadata`` is larger or deeper than a file may hold
            (:data:`MAX_JSON_CHARS`, :data:`MAX_JSON_DEPTH`).
        OSError: ``path``'s folder is missing or unwritable, or the disk is full; the
            previous file, if any, is left intact.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vae.pt"
        >>> save_model(VAE(Encoder(4, 8, 2), Decoder(2, 8, 4)), path, metadata={"epochs": 3})
        >>> read_metadata(path)
        {'epochs': 3}
    """
    path = _check_path(path)
    if metadata is not None:
        _metadata_text(metadata)  # before the work of checking the model
    config = model_config(model)
    _check_rebuilds(model, config)
    _write(path, config, model.state_dict(), metadata)


def save_weights(
    model: nn.Module, path: PathLike, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``model``'s ``state_dict`` (no architecture) to ``path``, atomically.

    For any module, built-in or not; read it back with :func:`load_weights` into a
    model built in code. The file has the same safe format as :func:`save_model`'s.

    Args:
        model: any ``nn.Module``.
        path: the file to write; its folder must exist.
        metadata: optional dict of JSON values to keep with the weights (see
            :func:`save_model`).

    Raises:
        TypeError: ``model`` is not a module, ``path`` not a path, or ``metadata`` not a
            dict of JSON values.
        ValueError: ``metadata`` is too large or too deep for a model file.
        OSError: ``path``'s folder is missing or unwritable, or the disk is full; the
            previous file, if any, is left intact.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _write(_check_path(path), None, model.state_dict(), metadata)


@dataclass(frozen=True)
class _Contents:
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


def _read(path: Path, map_location: MapLocation, allow_bare: bool) -> _Contents:
    obj = _torch_load(path, map_location)
    if allow_bare and _is_state_dict(obj) and obj:
        assert isinstance(obj, dict)
        return _Contents(None, obj, {})
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
        import torchvae

        raise SerializationError(
            f"{path} has format version {version}, written by a newer torchvae "
            f"({obj.get('torchvae_version', 'unknown version')}); this torchvae "
            f"({torchvae.__version__}) reads versions up to {FORMAT_VERSION}: upgrade torchvae"
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
    return _Contents(config, state, metadata)


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


def _check_sizes(path: Path, config: Config, state: Mapping[str, Tensor]) -> None:
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
            skeleton = _from_config(config, "config")
    except (TypeError, ValueError) as e:
        raise SerializationError(f"{path} holds a config that cannot be built: {e}") from e
    except Exception:
        return  # a class that cannot be built on the meta device: the real build checks
    problems = _compare_state(
        {k: tuple(v.shape) for k, v in skeleton.state_dict().items()},
        {k: tuple(v.shape) for k, v in state.items()},
    )
    if problems:
        raise SerializationError(
            f"{path} is inconsistent: its tensors do not fit the architecture in its own "
            f"config, {_describe(config)} ({problems})"
        )


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata stored with a model by :func:`save_model` (``{}`` if it has none).

    The whole file is read and its checksum checked, so the metadata is as written.

    Args:
        path: a file written by :func:`save_model` or :func:`save_weights`.

    Returns:
        The metadata dict; ``{}`` for files written without one (and bare state dicts).

    Raises:
        FileNotFoundError: ``path`` does not exist; ``IsADirectoryError`` and
            ``OSError`` as for :func:`load_model`.
        SerializationError: the file cannot be read (see :func:`load_model`), or its
            metadata is malformed, too large or too deeply nested.
        TypeError: ``path`` is not a path.
    """
    return _read(_check_path(path), "cpu", allow_bare=True).metadata


@overload
def load_model(path: PathLike, map_location: MapLocation = None) -> nn.Module: ...


@overload
def load_model(
    path: PathLike, map_location: MapLocation = None, *, expected_type: type[M]
) -> M: ...


def load_model(
    path: PathLike,
    map_location: MapLocation = None,
    *,
    expected_type: type[nn.Module] | None = None,
) -> nn.Module:
    """Rebuild a model written by :func:`save_model`; no code from the file runs.

    Args:
        path: the file.
        map_location: as for ``torch.load``: ``None`` keeps each tensor's saved device
            (e.g. ``"cuda:0"``); ``"cpu"`` or a ``torch.device`` moves them all there.
        expected_type: if given, the model must be of exactly this class (or a subclass).

    Returns:
        The model, each parameter with the dtype it was saved with, in training mode
        (call ``.eval()`` for inference).

    Raises:
        FileNotFoundError: ``path`` does not exist (or is a symbolic link to nowhere).
        IsADirectoryError: ``path`` is a folder.
        OSError: ``path`` is a loop of symbolic links or cannot be examined.
        SerializationError: the file is truncated or corrupted, is not a torchvae model
            file, holds pickled objects that could run code, has a newer format
            version, cannot go to its saved device, or holds a model that is not an
            ``expected_type``; the message names the file and the problem.
        TypeError: ``path`` is not a path.
    """
    path = _check_path(path)
    contents = _read(path, map_location, allow_bare=False)
    if contents.config is None:
        raise SerializationError(
            f"{path} holds weights only (written by save_weights), no architecture: build "
            f"the model in code and call load_weights(model, path)"
        )
    _check_sizes(path, contents.config, contents.state)
    try:
        model = _from_config(contents.config, "config")
    except (TypeError, ValueError) as e:
        raise SerializationError(f"{path} holds a config that cannot be built: {e}") from e
    except (RuntimeError, MemoryError, OverflowError) as e:  # sizes the meta build missed
        raise SerializationError(
            f"{path} holds a config that cannot be built ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if expected_type is not None and not isinstance(model, expected_type):
        raise SerializationError(
            f"{path} holds a {type(model).__name__}, not a {expected_type.__name__}: "
            f"load it with load_model(path) or {type(model).__name__}.load(path)"
        )
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = _compare_state(want, {k: tuple(v.shape) for k, v in contents.state.items()})
    if problems:
        raise SerializationError(
            f"{path} is inconsistent: its tensors do not fit the architecture in its own "
            f"config, {_describe(contents.config)} ({problems})"
        )
    model.load_state_dict(contents.state, assign=True)
    return model


def load_weights(model: M, path: PathLike, strict: bool = True) -> M:
    """Load the weights in ``path`` into ``model``, naming every key that does not fit.

    Reads files from :func:`save_model` and :func:`save_weights`, and bare state dicts
    saved with ``torch.save(model.state_dict(), path)``, all with the safe unpickler.
    The tensors are copied into ``model``'s parameters, which keep their dtype and device.

    Args:
        model: the module to fill, built in code.
        path: the file.
        strict: if ``True``, every key of ``model`` must be in the file and every key of
            the file in ``model``; if ``False``, keys on one side only are skipped. Shapes
            must always match.

    Returns:
        ``model``, for chaining.

    Raises:
        SerializationError: the file's keys or shapes do not fit ``model`` (the message
            lists the missing, unexpected and mismatched keys and, where known, both
            architectures), or the file cannot be read (see :func:`load_model`).
        FileNotFoundError: ``path`` does not exist; ``IsADirectoryError`` and
            ``OSError`` as for :func:`load_model`.
        TypeError: ``model`` is not a module or ``path`` not a path.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "enc.pt"
        >>> save_weights(Encoder(784, 32, 4), path)
        >>> load_weights(Encoder(784, 32, 8), path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        torchvae.serialization.SerializationError: ... 4 with different shapes: ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = _check_path(path)
    contents = _read(path, "cpu", allow_bare=True)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in contents.state.items()}
    if not strict:
        got = {k: s for k, s in got.items() if k in want}
        want = {k: s for k, s in want.items() if k in got}
    problems = _compare_state(want, got)
    if problems:
        ours = ""
        if contents.config is not None:
            with contextlib.suppress(TypeError):
                ours = f"; the file holds {_describe(contents.config)}, the model is " + (
                    _describe(model_config(model))
                )
        raise SerializationError(f"{path} does not fit the model: {problems}{ours}")
    state = {k: v for k, v in contents.state.items() if k in want}
    model.load_state_dict(state, strict=strict)
    return model


def _encoder_config(m: Encoder) -> Config:
    return {
        "input_dim": m.input_dim,
        "hidden_dims": list(m.hidden_dims),
        "latent_dim": m.latent_dim,
    }


def _decoder_config(m: Decoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "hidden_dims": list(m.hidden_dims),
        "output_dim": m.output_dim,
    }


def _conv_encoder_config(m: ConvEncoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "input_shape": list(m.input_shape),
        "channels": list(m.channels),
    }


def _conv_decoder_config(m: ConvDecoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "output_shape": list(m.output_shape),
        "channels": list(m.channels),
    }


register_serializable(
    Encoder,
    _encoder_config,
    lambda c: Encoder(c["input_dim"], c["hidden_dims"], c["latent_dim"]),
)
register_serializable(
    Decoder,
    _decoder_config,
    lambda c: Decoder(c["latent_dim"], c["hidden_dims"], c["output_dim"]),
)
register_serializable(
    ConvEncoder,
    _conv_encoder_config,
    lambda c: ConvEncoder(c["latent_dim"], c["input_shape"], c["channels"]),
)
register_serializable(
    ConvDecoder,
    _conv_decoder_config,
    lambda c: ConvDecoder(c["latent_dim"], c["output_shape"], c["channels"]),
)


def _vae_config(m: VAE) -> Config:
    config: Config = {
        "encoder": m.encoder,
        "decoder": m.decoder,
        "likelihood": m.likelihood,
        "prior": m.prior,
        "posterior": m.posterior_head,
    }
    if m.num_classes is not None:
        config.update(
            num_classes=m.num_classes, embedding=m.embedding_kind, embedding_dim=m.embedding_dim
        )
    return config


def _parts(c: Config) -> dict[str, Any]:
    """The VAE's distribution modules; files from before they existed have none (defaults)."""
    return {key: c.get(key) for key in ("likelihood", "prior", "posterior")}


register_serializable(
    VAE,
    _vae_config,
    lambda c: VAE(
        c["encoder"],
        c["decoder"],
        num_classes=c.get("num_classes"),
        embedding=c.get("embedding", "one_hot"),
        embedding_dim=c.get("embedding_dim"),
        **_parts(c),
    ),
)
register_serializable(
    ConditionalVAE,
    _vae_config,
    lambda c: ConditionalVAE(
        c["encoder"],
        c["decoder"],
        c["num_classes"],
        c["embedding"],
        c["embedding_dim"],
        **_parts(c),
    ),
)


def _register_by_arguments(cls: type[Any]) -> None:
    """A part whose ``config()`` is its constructor's keyword arguments."""
    register_serializable(cls, lambda m: m.config(), lambda c: cls(**c))


for _part in (
    Bernoulli,
    ContinuousBernoulli,
    Gaussian,
    StandardNormal,
    MixturePrior,
    VampPrior,
    FlowPrior,
    DiagonalGaussian,
    FlowPosterior,
):
    _register_by_arguments(_part)


# --- discrete latents and ex-post samplers --------------------------------------------------

for _vq_part in (Codebook, PixelCNNPrior, VQEncoder, VQDecoder, GaussianMixtureSampler):
    _register_by_arguments(_vq_part)


def _vqvae_config(m: VQVAE) -> Config:
    config: Config = {
        "encoder": m.encoder,
        "decoder": m.decoder,
        "codebook": m.codebook,
        "likelihood": m.likelihood,
    }
    if m.prior is not None:
        config["prior"] = m.prior
    return config


register_serializable(
    VQVAE,
    _vqvae_config,
    lambda c: VQVAE(
        c["encoder"],
        c["decoder"],
        c["codebook"],
        likelihood=c.get("likelihood"),
        prior=c.get("prior"),
    ),
)


def _with_sampler(cls: type[VAE]) -> None:
    """Re-register ``cls`` so that a sampler set as ``model.sampler`` is saved with it."""
    base = _BY_TYPE[cls]

    def to_config(m: VAE) -> Config:
        config = base.to_config(m)
        sampler = getattr(m, "sampler", None)
        if sampler is not None:
            config["sampler"] = sampler
        return config

    def from_config(c: Config) -> VAE:
        model = base.from_config({k: v for k, v in c.items() if k != "sampler"})
        assert isinstance(model, VAE)
        if c.get("sampler") is not None:
            model.sampler = c["sampler"]
        return model

    register_serializable(cls, to_config, from_config, base.name)


_with_sampler(VAE)
_with_sampler(ConditionalVAE)
