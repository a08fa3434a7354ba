"""``torchvae train --config FILE``: a run's options from a YAML, TOML or JSON file.

The file's keys are the flags' names with underscores (``latent_dim`` for
``--latent-dim``); flags given on the command line override it. The ``config.json`` a run
writes is itself such a file: its ``settings`` are read as keys of their own, its
``image_shape`` and ``model`` (what the run built: the architecture, a mapping, where
the ``model`` option is a name) are checked against what the new run
builds, so ``torchvae train --config runs/a/config.json --out-dir runs/b`` repeats run a.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._parser import CLIError

__all__ = ["RECORDED", "apply_config", "read_config", "repeatable"]

# Keys of a run's config.json that say what was built, not what to build.
RECORDED = ("image_shape", "model")
# Options a run's config.json records beside its settings, so that a run can be repeated.
REPEATED = ("epochs", "max_batches", "data_dir")
# Options a config file may not set: they name this invocation, not the run.
_NOT_IN_FILES = {"command", "config", "debug", "help"}


def _load_yaml(text: str, path: Path) -> Any:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise CLIError(
            f"--config {path}: reading YAML needs PyYAML (pip install torchvae[config]); "
            f"or write the file as TOML (.toml) or JSON (.json)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CLIError(f"--config {path} is not valid YAML: {' '.join(str(e).split())}") from e


def _load_toml(text: str, path: Path) -> Any:
    try:
        toml: Any = importlib.import_module("tomllib")
    except ImportError:  # Python 3.10
        try:
            toml = importlib.import_module("tomli")
        except ImportError:
            raise CLIError(
                f"--config {path}: reading TOML on Python 3.10 needs tomli (pip install "
                f"tomli); or write the file as JSON (.json)"
            ) from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise CLIError(f"--config {path} is not valid TOML: {e}") from e


def read_config(path: Path) -> dict[str, Any]:
    """The mapping in ``path`` (``.yaml``/``.yml``, ``.toml`` or ``.json``).

    Raises:
        CLIError: the file is missing, of another kind, malformed or not a mapping.
    """
    kind = path.suffix.lower()
    if kind not in (".yaml", ".yml", ".toml", ".json"):
        raise CLIError(f"--config {path}: expected a .yaml, .yml, .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CLIError(f"--config {path}: cannot read it ({e})") from e
    if kind == ".json":
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError as e:
            raise CLIError(f"--config {path} is not valid JSON: {e}") from e
    else:
        value = _load_toml(text, path) if kind == ".toml" else _load_yaml(text, path)
    if value is None:
        value = {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CLIError(f"--config {path} must hold a mapping of option names to values")
    return value


def _flatten(values: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options in ``values`` (``settings`` merged in) and the recorded facts."""
    # "model" is the --model option (a name) or, in a run's config.json, its architecture
    recorded = {k: values[k] for k in RECORDED if k in values}
    if not isinstance(recorded.get("model", {}), dict):
        del recorded["model"]
    options = {k: v for k, v in values.items() if k != "settings" and k not in recorded}
    settings = values.get("settings", {})
    if not isinstance(settings, dict):
        raise CLIError(f"--config {path}: 'settings' must be a mapping of option names")
    for key, value in settings.items():
        if key in options and options[key] != value:
            raise CLIError(f"--config {path} sets {key!r} twice, to different values")
        options[key] = value
    return options, recorded


def _action_of(parser: argparse.ArgumentParser, dest: str) -> argparse.Action | None:
    return next((a for a in parser._actions if a.dest == dest), None)


def _convert(action: argparse.Action, key: str, value: Any, path: Path) -> Any:
    where = f"--config {path}: {key}"
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise CLIError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:
        return None
    if isinstance(action, argparse._AppendAction):  # KEY=VALUE pairs: a mapping, or a list
        items = (
            [f"{k}={json.dumps(v)}" for k, v in value.items()]
            if isinstance(value, dict)
            else [str(v) for v in (value if isinstance(value, list) else [value])]
        )
        try:
            return [action.type(item) if callable(action.type) else item for item in items]
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise CLIError(f"{where}: {e}") from None
    if isinstance(value, bool | dict):
        raise CLIError(f"{where} must be {action.metavar or 'a value'}, got {value!r}")
    listed = isinstance(value, list)
    text = ",".join(str(v) for v in value) if listed else str(value)
    try:
        converted = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise CLIError(f"{where}: {e}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise CLIError(f"{where} must be one of {choices}, got {value!r}")
    if listed and not isinstance(converted, list):  # [400] is one layer, 400 is two
        converted = [converted]
    return converted


def apply_config(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, args: argparse.Namespace
) -> argparse.Namespace:
    """``args`` with the options of ``args.config`` where no flag gave them.

    Raises:
        CLIError: the file cannot be read, names an unknown option or holds a bad value.
    """
    path: Path = args.config
    train = next(
        a.choices["train"] for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    options, recorded = _flatten(read_config(path), path)
    known = sorted(
        a.dest for a in train._actions if a.dest not in _NOT_IN_FILES and a.dest != "==SUPPRESS=="
    )
    defaults: dict[str, Any] = {}
    for key, value in options.items():
        action = _action_of(train, key)
        if action is None or key in _NOT_IN_FILES:
            close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CLIError(
                f"--config {path}: unknown option {key!r}{hint}; the keys are the flags' "
                f"names with underscores: {', '.join(known)}"
            )
        defaults[key] = _convert(action, key, value, path)
    train.set_defaults(**defaults)
    again = parser.parse_args(argv)  # flags given on the command line win
    again.recorded = recorded
    return again


def repeatable(args: argparse.Namespace) -> dict[str, Any]:
    """The options beside the settings that a run's config.json records."""
    values = {key: getattr(args, key, None) for key in REPEATED}
    if values["data_dir"] is not None:
        values["data_dir"] = str(values["data_dir"])
    return values
