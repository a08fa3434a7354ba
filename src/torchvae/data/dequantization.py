r"""Uniform dequantization of 8-bit images, and the bits/dim correction it implies.

An 8-bit image :math:`x \in \{0, \dots, 255\}^D` is discrete; a continuous likelihood
(a Gaussian, a flow) puts a *density* on it, and a density can grow without bound on
discrete points. Uniform dequantization (Uria et al. 2013; Theis et al. 2016) trains
the density on

.. math:: y = \frac{x + u}{256}, \qquad u \sim \mathcal{U}(0, 1)^D,

which fills each of the :math:`256^D` bins of width :math:`1/256` of :math:`[0, 1)^D`.
A density :math:`p` on :math:`y` then defines a discrete model
:math:`P(x) = \int_{\text{bin}(x)} p(y)\,dy`, and by Jensen's inequality

.. math::
    \log P(x) \ge \mathbb{E}_u\left[\log p\!\left(\tfrac{x + u}{256}\right)\right]
    - D \log 256,

so the discrete negative log-likelihood is bounded by the density's plus
:math:`D \log 256` nats (:func:`dequantization_correction`), that is

.. math:: \text{bits/dim}(x) \le \frac{-\mathbb{E}_u \log p(y)}{D \ln 2} + 8.

Without that term, bits/dim of a density on :math:`[0, 1]` are not comparable with those of
a discrete likelihood (which are what papers report: 3.11 for IAF on CIFAR-10).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_generator, check_positive_int, check_tensor

__all__ = ["dequantization_correction", "dequantize"]

# u is scaled by 1 - 2**-16 so that x + u, rounded to float32, stays below x + 1 (for
# x <= 255 the float32 spacing is at most 2**-16): every y then lies in its own bin.
_BELOW_ONE = 1.0 - 2.0**-16


def dequantize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Dequantize 8-bit images: :math:`y = (x + u) / 256` with :math:`u \sim \mathcal{U}(0, 1)`.

    Each :math:`y` lies in its bin :math:`[x / 256, (x + 1) / 256)` (so
    :math:`\lfloor 256 y \rfloor = x` exactly), with a fresh :math:`u` per value. Note the
    scale: :math:`x / 256 + u / 256`, not the :math:`x / 255` of plain conversion.

    Args:
        images: ``uint8`` images of any shape, values 0..255.
        generator: The source of :math:`u` (on ``images``' device) for a reproducible draw;
            ``None`` uses torch's global generator.

    Returns:
        ``float32`` values of ``images``' shape in :math:`[0, 1)`.

    Raises:
        TypeError: ``images`` is not a ``uint8`` tensor, or ``generator`` is not a generator.
        ValueError: ``generator`` is on another device type than ``images``.

    Example:
        >>> x = torch.tensor([0, 255], dtype=torch.uint8)
        >>> y = dequantize(x, torch.Generator().manual_seed(0))
        >>> torch.floor(y * 256).to(torch.uint8).equal(x)
        True
    """
    images = check_tensor(images, "images")
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 (8-bit values 0..255) to dequantize, got dtype {images.dtype}"
        )
    check_generator(generator, images.device)
    u = torch.rand(images.shape, generator=generator, device=images.device)
    return u.mul_(_BELOW_ONE).add_(images).div_(256)


def dequantization_correction(dims: int, levels: int = 256) -> float:
    r"""The nats to add to a density's NLL on dequantized data: :math:`D \log(\text{levels})`.

    For data dequantized as :math:`y = (x + u) / \text{levels}` (:func:`dequantize`, with
    256 levels for 8-bit images), the NLL of the discrete data is at most the density's
    NLL of :math:`y` plus this; in bits per dimension, plus :math:`\log_2(\text{levels})`
    (8 for 8-bit images).

    Args:
        dims: Values per example :math:`D` (3072 for a 32x32 colour image).
        levels: Values per dimension of the discrete data (256 for 8 bits).

    Returns:
        :math:`D \log(\text{levels})` in nats.

    Raises:
        TypeError: ``dims`` or ``levels`` is not an int.
        ValueError: ``dims`` < 1 or ``levels`` < 2.

    Example:
        >>> round(dequantization_correction(3072) / (3072 * math.log(2)), 6)  # bits/dim
        8.0
    """
    dims = check_positive_int(dims, "dims")
    levels = check_positive_int(levels, "levels")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    return dims * math.log(levels)
