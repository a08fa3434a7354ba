"""Files: model files (a JSON config and tensors, no pickled code), training checkpoints,
atomic writes and run-folder locks."""

from __future__ import annotations

from .checkpoint import (
    CheckpointError,
    find_last_checkpoint,
    get_rng_state,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from .registry import (
    model_config,
    model_from_config,
    register_by_arguments,
    register_serializable,
)
from .serialization import (
    SerializationError,
    load_model,
    load_weights,
    read_metadata,
    save_model,
    save_weights,
)

__all__ = [
    "CheckpointError",
    "SerializationError",
    "find_last_checkpoint",
    "get_rng_state",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "model_config",
    "model_from_config",
    "read_metadata",
    "register_by_arguments",
    "register_serializable",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_model",
    "save_weights",
    "set_rng_state",
]
