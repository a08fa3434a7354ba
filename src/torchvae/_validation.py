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
    "check_generator",
    "check_in_unit_interval",
    "check_positive_int",
    "check_positive_ints",
    "check_real",
    "check_tensor",
    "set_validation",
    "trusted_inputs",
    "validation_enabled",
]

_VALIDATE = True
_TRUSTED = 0


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
    """Whether value checks on input tensors are on (see :func:`set_validation`).

    They are also off inside :class:`trusted_inputs` (a model passing tensors it has
    checked to its own submodules) and while ``torch.compile`` traces, where a check's
    device synchronisation would break the graph.
    """
    return _VALIDATE and not _TRUSTED and not torch.compiler.is_compiling()


class trusted_inputs:  # noqa: N801 - used like a function: ``with trusted_inputs():``
    """Skip value checks in nested calls whose inputs the caller has already checked.

    A :class:`~torchvae.VAE` checks ``x`` once at its surface and then calls its encoder
    and decoder inside this context, so that a training step pays for one check, not one
    per layer of the call stack.
    """

    def __enter__(self) -> None:
        global _TRUSTED
        _TRUSTED += 1

    def __exit__(self, *exc: object) -> None:
        global _TRUSTED
        _TRUSTED -= 1


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


def check_real(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a real number (not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_generator(generator: object, device: torch.device, name: str = "generator") -> None:
    """Raise unless ``generator`` is ``None`` or a ``torch.Generator`` on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(
            f"{name} is on {generator.device} but the values it draws must be on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def _check_has_values(x: Tensor, name: str) -> None:
    if x.device.type == "meta":
        raise ValueError(f"{name} is a meta tensor, which holds no values to compute with")


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or inf (or no values)."""
    _check_has_values(x, name)
    if validation_enabled() and not bool(torch.isfinite(x).all()):
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
    _check_has_values(x, name)
    if validation_enabled():
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
