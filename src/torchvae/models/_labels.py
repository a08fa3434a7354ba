"""Class labels as a VAE's condition: their checks, their code :math:`e(y)`, and how it enters.

The decoder sees :math:`[z, e(y)]`. The encoder sees :math:`[\\operatorname{flatten}(x),
e(y)]`, or, for an encoder with a 3-tuple ``input_shape`` (a convolutional one), the image
with :math:`e(y)` broadcast as extra channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_positive_int, check_tensor, validation_enabled

__all__ = [
    "EmbeddingKind",
    "OneHot",
    "check_labels",
    "embedding_width",
    "join_condition",
    "label_tensor",
    "labels_ok",
    "make_embedding",
]

EmbeddingKind = Literal["one_hot", "learned"]
"""How a label enters the networks: ``"one_hot"`` (a fixed one-hot code of width
``num_classes``) or ``"learned"`` (an ``nn.Embedding`` of width ``embedding_dim``)."""


class OneHot(nn.Module):
    """Labels ``(batch,)`` to one-hot rows ``(batch, num_classes)``; no parameters."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def embedding_width(embedding: object, num_classes: int, embedding_dim: object) -> int:
    """The width of :math:`e(y)`, checking ``embedding`` and ``embedding_dim`` agree."""
    if embedding == "one_hot":
        if embedding_dim is not None and embedding_dim != num_classes:
            raise ValueError(
                f"embedding_dim must be None or num_classes ({num_classes}) for a one-hot "
                f"embedding, got {embedding_dim!r}; use embedding='learned' for another width"
            )
        return num_classes
    if embedding == "learned":
        return (
            num_classes
            if embedding_dim is None
            else check_positive_int(embedding_dim, "embedding_dim")
        )
    raise ValueError(f"embedding must be 'one_hot' or 'learned', got {embedding!r}")


def make_embedding(kind: EmbeddingKind, num_classes: int, width: int) -> nn.Module:
    """The module computing :math:`e(y)`."""
    return OneHot(num_classes) if kind == "one_hot" else nn.Embedding(num_classes, width)


def check_labels(
    y: object, batch: int, device: torch.device, num_classes: int, name: str = "y"
) -> Tensor:
    """``y`` as ``long`` labels ``(batch,)`` on ``device``, or an error saying what is wrong.

    The range is read only while value checks are on (see :func:`~torchvae.set_validation`);
    inside the Trainer's step it is folded into the step's one check (:func:`labels_ok`).
    """
    y = check_tensor(y, name)
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        hint = f" (for float labels use {name}.long())" if y.is_floating_point() else ""
        raise TypeError(
            f"{name} must be an integer tensor of class labels, got dtype {y.dtype}{hint}"
        )
    if y.ndim != 1 or y.shape[0] != batch:
        hint = (
            f"; for one-hot labels pass {name}.argmax(1)"
            if y.ndim == 2 and y.shape == (batch, num_classes)
            else ""
        )
        raise ValueError(
            f"{name} must have shape (batch,) = ({batch},), one label per example, "
            f"got shape {tuple(y.shape)}{hint}"
        )
    if y.device != device:
        raise ValueError(
            f"{name} is on {y.device} but x and the model are on {device}; "
            f"move it with {name}.to({str(device)!r})"
        )
    if validation_enabled() and batch:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} must hold class labels in [0, num_classes) = "
                f"[0, {num_classes}), got values in [{lo}, {hi}]"
            )
    return y.long()


def labels_ok(y: Tensor, num_classes: int) -> Tensor:
    """Whether every label is in ``[0, num_classes)``, as a 0-d bool tensor (no sync)."""
    if y.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=y.device)
    low, high = torch.aminmax(y)
    return (low >= 0) & (high < num_classes)


def label_tensor(y: object, n: int, device: torch.device) -> Tensor:
    """``n`` labels from an int, a sequence of ints or an integer tensor (0-d: repeated)."""
    if isinstance(y, bool):
        raise TypeError(f"y must be an int class label or a tensor of them, got {y!r}")
    if isinstance(y, int):
        return torch.full((n,), y, dtype=torch.long, device=device)
    if isinstance(y, Tensor):
        if y.device.type == "meta" and device.type != "meta":
            raise ValueError("y is a meta tensor, which holds no labels")
        return y.to(device) if y.ndim else y.to(device).expand(n)
    if isinstance(y, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in y):
        return torch.tensor(list(y), dtype=torch.long, device=device)
    raise TypeError(
        f"y must be an int class label, a sequence of ints or an integer tensor, "
        f"got {type(y).__name__}"
    )


def join_condition(x: Tensor, e: Tensor, image_shape: tuple[int, ...] | None) -> Tensor:
    """The encoder's input: ``x`` with ``e`` as extra channels (images) or features (flat)."""
    if image_shape is not None:
        image = x.reshape(x.shape[0], *image_shape)
        planes = e[:, :, None, None].expand(-1, -1, *image_shape[1:])
        return torch.cat([image, planes], dim=1)
    return torch.cat([x.flatten(1), e], dim=1)
