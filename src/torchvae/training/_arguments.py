"""The checks of the Trainer's arguments, each a clear error naming the argument."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..callbacks import Callback

__all__ = ["check_arguments"]


def check_arguments(
    model: object,
    loss: object,
    optimizer: object,
    callbacks: object,
    grad_clip: object,
    seed: object,
) -> list[Callback]:
    """Check what the Trainer was given; returns the callbacks as a list.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an argument out of range.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if loss is not None and not isinstance(loss, nn.Module):
        raise TypeError(
            f"loss must be a loss module such as ELBOLoss() or None, got {type(loss).__name__}"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
        )
    found = list(callbacks) if isinstance(callbacks, Iterable) else callbacks
    if not isinstance(found, list) or any(not isinstance(c, Callback) for c in found):
        raise TypeError(f"callbacks must be an iterable of Callback objects, got {callbacks!r}")
    if grad_clip is not None:
        if isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float)):
            raise TypeError(f"grad_clip must be a positive float or None, got {grad_clip!r}")
        if not (math.isfinite(grad_clip) and grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive finite float or None, got {grad_clip}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
    return found
