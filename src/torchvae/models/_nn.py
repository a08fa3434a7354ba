"""Small building blocks shared by the encoders and decoders."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn

from .._validation import check_finite, check_floating, validation_enabled

__all__ = [
    "Activation",
    "check_overflow",
    "conv_stack",
    "deconv_stack",
    "halved",
    "mlp",
    "to_batch_of",
]

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


def halved(size: int, times: int) -> int:
    """``size`` after ``times`` stride-2 4x4 convolutions with padding 1 (each rounds down)."""
    for _ in range(times):
        size //= 2
    return size


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


def check_overflow(x: Tensor, name: str, *outputs: Tensor) -> None:
    """Raise a ``ValueError`` naming ``name`` if a network's ``outputs`` for ``x`` hold NaN/inf.

    A finite but huge ``x`` (say ``3e38``) overflows the first matrix product to
    ``inf - inf = NaN``; this says so instead of handing on the NaN.
    """
    if not validation_enabled():
        return
    finite = torch.stack([torch.isfinite(t).all() for t in outputs]).all()
    if not bool(finite):
        largest = float(x.abs().max()) if x.numel() else 0.0
        raise ValueError(
            f"{name}'s values (largest |{name}| = {largest:g}) overflow the network's "
            f"{x.dtype} arithmetic to NaN/inf; scale {name} to a moderate range such as [0, 1]"
        )


def _check_not_nan(x: Tensor, name: str) -> Tensor:
    if x.device.type == "meta":
        raise ValueError(f"{name} is a meta tensor, which holds no values to compute with")
    if validation_enabled() and bool(torch.isnan(x).any()):
        raise ValueError(
            f"{name} must not hold NaN, got {int(torch.isnan(x).sum())} NaN values in a "
            f"tensor of shape {tuple(x.shape)}"
        )
    return x


def to_batch_of(
    x: object, shape: tuple[int, ...], name: str, like: Tensor, allow_inf: bool = False
) -> Tensor:
    """Reshape ``x`` of shape ``(batch, ...)`` to ``(batch, *shape)`` in ``like``'s dtype.

    Any trailing layout with the right number of features is accepted, so flat
    ``(batch, 784)`` and image ``(batch, 1, 28, 28)`` input both work. ``like`` is one of
    the module's parameters: ``x`` must be on its device and is cast to its dtype, so that
    a float64 or float16 input to a float32 module works. NaN is always refused; inf
    only unless ``allow_inf`` (for decoders, which clamp their input).

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` has no batch dimension, the wrong number of features, is on
            another device than ``like``, or holds NaN/inf (also after the cast).
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
    if x.device != like.device:
        raise ValueError(
            f"{name} is on {x.device} but the module's parameters are on {like.device}; "
            f"move one of them (e.g. {name}.to({str(like.device)!r}))"
        )
    check = _check_not_nan if allow_inf else check_finite
    check(x, name)
    if x.dtype != like.dtype:
        x = check(x.to(like.dtype), f"{name} (cast to the parameters' {like.dtype})")
    return x.reshape(x.shape[0], *shape)
