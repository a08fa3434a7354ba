r"""Model files: one file per model, a JSON config plus tensors, no pickled code.

:func:`save_model` writes a model so that :func:`load_model` can rebuild it with no
Python code at hand: the file holds the architecture as a JSON config (for example
``{"type": "Encoder", "input_dim": 784, "hidden_dims": [400, 400], "latent_dim": 20}``)
and the tensors of its ``state_dict``. :func:`save_weights` and :func:`load_weights` do
the same for the weights of any module, built-in or not, whose architecture the user
builds in code.

**The format.** A file is a `safetensors <https://huggingface.co/docs/safetensors>`_
file (format version 3): an 8-byte header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw bytes of the ``state_dict``. Its
``__metadata__`` dict of strings holds

.. code-block:: text

    {"format": "torchvae", "format_version": "3", "torchvae_version": "0.1.0",
     "config": "<JSON string; absent for a weights-only file>",
     "metadata": "<JSON string, if any>", "sha256": "<hex digest>",
     "devices": "<JSON {name: device} for tensors saved off the CPU, if any>"}

so any safetensors reader gets the weights, and :func:`load_model` the whole model. The
metadata is what the writer chose to record beside the model (for ``torchvae train``: the
data set, image shape, binarization and run settings), read back with
:func:`read_metadata`. Files of format versions 1 and 2 (earlier torchvae: what
``torch.save`` writes for ``{"format": "torchvae", "format_version": 1, "config": ...,
"state_dict": ..., "sha256": ..., "metadata": ...}``) are still read, with
``torch.load(..., weights_only=True)``, whose unpickler accepts tensors, strings, numbers,
lists and dicts only. A file is told apart by its first bytes, not by its name.

Nothing in a safetensors file is code, and its header is parsed and bounded by the
safetensors library before any tensor is made (offsets inside the file, no overlaps,
sizes that match shapes). The SHA-256 digest covers the config, the metadata and every
tensor's name, dtype, shape and bytes. It detects corruption, not tampering (anyone can
recompute it); safety against hostile files comes from the format and from bounds on
what a file may ask for: its JSON is at most :data:`MAX_JSON_CHARS` characters and
:data:`MAX_JSON_DEPTH` levels deep, no size in its config exceeds the largest tensor it
holds, and the architecture is first built on the meta device (no memory) and compared
with the file's tensors, so a forged config cannot make :func:`load_model` allocate more
than the file's own tensors. A reader refuses format versions newer than its own.

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
from collections.abc import Mapping
from typing import Any, TypeVar, overload

from torch import nn

from ._format import (
    FORMAT_VERSION,
    MAX_JSON_CHARS,
    MAX_JSON_DEPTH,
    MapLocation,
    PathLike,
    SerializationError,
    check_path,
    check_sizes,
    metadata_text,
    read_file,
    write_file,
)
from .registry import (
    check_rebuilds,
    compare_state,
    describe_config,
    from_config,
    model_config,
    model_from_config,
    register_serializable,
)

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

M = TypeVar("M", bound=nn.Module)


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
        >>> from torchvae import VAE, Decoder, Encoder
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vae.pt"
        >>> save_model(VAE(Encoder(4, 8, 2), Decoder(2, 8, 4)), path, metadata={"epochs": 3})
        >>> read_metadata(path)
        {'epochs': 3}
    """
    path = check_path(path)
    if metadata is not None:
        metadata_text(metadata)  # before the work of checking the model
    config = model_config(model)
    check_rebuilds(model, config)
    write_file(path, config, model.state_dict(), metadata)


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
    write_file(check_path(path), None, model.state_dict(), metadata)


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
    return read_file(check_path(path), "cpu", allow_bare=True).metadata


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
    path = check_path(path)
    contents = read_file(path, map_location, allow_bare=False)
    if contents.config is None:
        raise SerializationError(
            f"{path} holds weights only (written by save_weights), no architecture: build "
            f"the model in code and call load_weights(model, path)"
        )
    check_sizes(path, contents.config, contents.state)
    try:
        model = from_config(contents.config, "config")
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
    problems = compare_state(want, {k: tuple(v.shape) for k, v in contents.state.items()})
    if problems:
        raise SerializationError(
            f"{path} is inconsistent: its tensors do not fit the architecture in its own "
            f"config, {describe_config(contents.config)} ({problems})"
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
        >>> from torchvae import Encoder
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "enc.pt"
        >>> save_weights(Encoder(784, 32, 4), path)
        >>> load_weights(Encoder(784, 32, 8), path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        torchvae.io._format.SerializationError: ... 4 with different shapes: ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = check_path(path)
    contents = read_file(path, "cpu", allow_bare=True)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in contents.state.items()}
    if not strict:
        got = {k: s for k, s in got.items() if k in want}
        want = {k: s for k, s in want.items() if k in got}
    problems = compare_state(want, got)
    if problems:
        ours = ""
        if contents.config is not None:
            with contextlib.suppress(TypeError):
                ours = f"; the file holds {describe_config(contents.config)}, the model is " + (
                    describe_config(model_config(model))
                )
        raise SerializationError(f"{path} does not fit the model: {problems}{ours}")
    state = {k: v for k, v in contents.state.items() if k in want}
    model.load_state_dict(state, strict=strict)
    return model
