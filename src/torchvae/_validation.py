"""Argument checks shared by every public entry point.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the argument,
what was expected and what was given, so that bad input fails at the library's surface
rather than deep inside torch (or, worse, as a silent NaN).

The tensor checks that read values (finiteness, range) cost one reduction and, on an
accelerator, one synchronisation. They can be switched off globally for maximum speed with
:func:`set_validation`, in the spirit of
``torch.distributions.Distribution.set_default_validate_args``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_finite",
    "check_floating",
    "check_in_unit_interval",
    "check_positive_int",
    "check_positive_ints",
    "check_tensor",
    "set_validation",
    "validation_enabled",
]

_VALIDATE = True


def set_validation(enabled: bool) -> None:
    """Turn value checks (finiteness, range) on input tensors on or off.

    Shape, dtype and argument checks always run; only the checks that read tensor
    values, which cost a reduction and a device synchronisation, are affected.

    Args:
        enabled: ``True`` (the default) to check values, ``False`` to skip.
    """
    global _VALIDATE
    _VALIDATE = bool(enabled)


def validation_enabled() -> bool:
    """Whether value checks on input tensors are on (see :func:`set_validation`)."""
    return _VALIDATE


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an ``int`` >= 1, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value}")
    return value


def check_positive_ints(values: object, name: str) -> tuple[int, ...]:
    """Return ``values`` as a tuple of positive ints, accepting one int or a sequence."""
    if isinstance(values, int) and not isinstance(values, bool):
        return (check_positive_int(values, name),)
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(
            f"{name} must be a positive int or a sequence of them, "
            f"got {type(values).__name__} {values!r}"
        )
    return tuple(check_positive_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def check_tensor(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a tensor, else raise a ``TypeError`` naming ``name``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_floating(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a floating-point tensor, else raise naming ``name``.

    Integer images (``uint8`` 0..255) are the most common mistake; the message says how
    to convert them.
    """
    x = check_tensor(x, name)
    if not x.is_floating_point():
        hint = " (for uint8 images, use x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}{hint}")
    return x


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or inf."""
    if _VALIDATE and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} must be finite, got {n_nan} NaN and {n_inf} inf values "
            f"in a tensor of shape {tuple(x.shape)}"
        )
    return x


def check_in_unit_interval(x: Tensor, name: str, why: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` unless every value of ``x`` is in [0, 1].

    NaN fails the check too, so that a NaN target cannot pass silently.
    """
    if _VALIDATE:
        inside = (x >= 0) & (x <= 1)
        if not bool(inside.all()):
            finite = x[torch.isfinite(x)]
            lo = float(finite.min()) if finite.numel() else float("nan")
            hi = float(finite.max()) if finite.numel() else float("nan")
            n_bad = int((~inside).sum())
            raise ValueError(
                f"{name} must lie in [0, 1] for {why}; got {n_bad} values outside "
                f"(finite range [{lo:g}, {hi:g}]"
                f"{', with NaN/inf' if not bool(torch.isfinite(x).all()) else ''})"
            )
    return x
