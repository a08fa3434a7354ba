"""The registry of classes a model file may hold, and their configs.

A class is registered with :func:`register_serializable` (or, when its ``config()`` returns
its constructor's keyword arguments, :func:`register_by_arguments`); the model modules
register their own classes beside their definitions, so that this module knows no model.
Only registered ``from_config`` functions ever run on load: a file chooses which by name,
never supplies code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "Config",
    "model_config",
    "model_from_config",
    "register_by_arguments",
    "register_serializable",
]

M = TypeVar("M", bound=nn.Module)
Config = dict[str, Any]


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
        >>> import torch
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
        >>> from torchvae import Decoder
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


def from_config(config: object, where: str) -> nn.Module:
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise ValueError(f"{where} must be a dict with a str 'type' key, got {config!r}")
    codec = _BY_NAME.get(config["type"])
    if codec is None:
        raise ValueError(
            f"{where} has unknown type {config['type']!r}; known types: "
            f"{', '.join(sorted(_BY_NAME))} (others need register_serializable)"
        )
    kwargs = {
        key: from_config(value, f"{where}.{key}")
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
    return from_config(dict(config), "config")


def describe_config(config: object) -> str:
    if isinstance(config, dict) and isinstance(config.get("type"), str):
        args = ", ".join(f"{k}={describe_config(v)}" for k, v in config.items() if k != "type")
        return f"{config['type']}({args})"
    return json.dumps(config)


def _structure(module: nn.Module) -> list[tuple[str, str]]:
    return [
        (name, f"{type(m).__name__}({m.extra_repr()})")
        for name, m in module.named_modules()
        if name  # the root's own repr spells out its children
    ]


def check_rebuilds(model: nn.Module, config: Config) -> None:
    """Raise unless ``config`` rebuilds ``model``'s exact layers and tensor shapes."""
    # Built on the CPU: the meta device would avoid the allocation but its first use
    # imports torch's reference kernels, which costs seconds.
    rebuilt = from_config(config, "config")
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
    problems = compare_state(
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


def compare_state(
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


def register_by_arguments(cls: type[Any]) -> None:
    """Register ``cls``, whose ``config()`` returns its constructor's keyword arguments."""
    register_serializable(cls, lambda m: m.config(), lambda c: cls(**c))
