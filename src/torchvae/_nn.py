"""Small building blocks shared by the encoders and decoders."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

from torch import Tensor, nn

from ._validation import check_floating

__all__ = ["Activation", "conv_stack", "deconv_stack", "mlp", "to_batch_of"]

Activation = Callable[[], nn.Module]


def leaky_relu() -> nn.Module:
    """The textbook's activation, ``LeakyReLU(0.2)``."""
    return nn.LeakyReLU(0.2)


def mlp(sizes: Sequence[int], activation: Activation) -> nn.Sequential:
    """``Linear`` layers between consecutive ``sizes``, each followed by ``activation()``."""
    layers: list[nn.Module] = []
    for n_in, n_out in pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), activation()]
    return nn.Sequential(*layers)


def conv_stack(channels: Sequence[int], activation: Activation) -> nn.Sequential:
    """Stride-2 4x4 convolutions, each halving height and width."""
    layers: list[nn.Module] = []
    for c_in, c_out in pairwise(channels):
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), activation()]
    return nn.Sequential(*layers)


def deconv_stack(channels: Sequence[int], activation: Activation) -> nn.Sequential:
    """Stride-2 4x4 transposed convolutions, each doubling height and width.

    No activation follows the last layer: it gives logits.
    """
    layers: list[nn.Module] = []
    for c_in, c_out in pairwise(channels):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), activation()]
    return nn.Sequential(*layers[:-1])


def to_batch_of(x: object, shape: tuple[int, ...], name: str) -> Tensor:
    """Reshape ``x`` of shape ``(batch, ...)`` to ``(batch, *shape)``.

    Any trailing layout with the right number of features is accepted, so flat
    ``(batch, 784)`` and image ``(batch, 1, 28, 28)`` input both work.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` has no batch dimension or the wrong number of features.
    """
    x = check_floating(x, name)
    features = math.prod(shape)
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (batch, ...) with {features} features per example, "
            f"got shape {tuple(x.shape)}; for a single example use {name}.unsqueeze(0)"
        )
    got = math.prod(x.shape[1:])
    if got != features:
        raise ValueError(
            f"{name} must have {features} features per example (e.g. shape "
            f"(batch, {', '.join(map(str, shape))})), got shape {tuple(x.shape)} "
            f"with {got} features"
        )
    return x.reshape(x.shape[0], *shape)
