r"""Decoders: networks that map ``z`` to the parameters of :math:`p_\theta(x \mid z)`.

A decoder's ``logits(z)`` gives unconstrained outputs of shape ``(batch, *output_shape)``
from which the likelihoods compute :math:`\log p_\theta(x \mid z)` stably; calling the
decoder gives ``sigmoid(logits)``, values in [0, 1], as the textbook's decoder does.

The interface :class:`~torchvae.VAE` relies on is ``logits(z)`` (or, failing that, a
``forward(z)`` returning values in [0, 1]); any ``nn.Module`` that follows it plugs in.

The decoders here clamp each coordinate of ``z`` to :math:`[-10^4, 10^4]` before the first
layer. Prior samples never come near that bound, but without it a huge finite ``z`` (say
``3e38``) overflows the first matrix product to ``inf - inf = NaN``; with it, the output
is finite and in [0, 1] for every finite ``z``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from .._validation import check_positive_int, check_positive_ints
from ..io.registry import Config, register_serializable
from ._nn import Activation, deconv_stack, leaky_relu, mlp, to_batch_of

__all__ = ["ConvDecoder", "Decoder"]

_Z_LIMIT = 1e4


def _latent_batch(z: object, latent_dim: int, like: Tensor) -> Tensor:
    r"""``z`` as ``(batch, latent_dim)`` in ``like``'s dtype, clamped to :math:`\pm 10^4`."""
    return to_batch_of(z, (latent_dim,), "z", like, allow_inf=True).clamp(-_Z_LIMIT, _Z_LIMIT)


class _SigmoidDecoder(nn.Module):
    """Base for decoders: ``forward(z) = sigmoid(logits(z))``."""

    latent_dim: int
    output_shape: tuple[int, ...]

    def logits(self, z: Tensor) -> Tensor:
        """Unconstrained outputs, shape ``(batch, *output_shape)``."""
        raise NotImplementedError

    def forward(self, z: Tensor) -> Tensor:
        r"""Outputs in [0, 1]: :math:`\sigma(\text{logits}(z))`."""
        return torch.sigmoid(self.logits(z))


class Decoder(_SigmoidDecoder):
    r"""The textbook's MLP decoder, generalized to any list of hidden sizes.

    .. math::
        \hat x = \sigma\!\left(W_o\,\mathrm{LeakyReLU}_{0.2}(\cdots
        \mathrm{LeakyReLU}_{0.2}(W_1 z))\right) \in [0, 1]^{D}

    Args:
        latent_dim: dimension of :math:`z`.
        hidden_dim: one size, used for the textbook's two hidden layers, or a sequence of
            sizes, one hidden layer each.
        output_dim: features per example, e.g. 784.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> dec = Decoder(latent_dim=200, hidden_dim=400, output_dim=784)
        >>> x_hat = dec(torch.randn(5, 200))
        >>> tuple(x_hat.shape), bool(((0 <= x_hat) & (x_hat <= 1)).all())
        ((5, 784), True)
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int | Sequence[int],
        output_dim: int,
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        hidden = (
            (check_positive_int(hidden_dim, "hidden_dim"),) * 2
            if isinstance(hidden_dim, int)
            else (check_positive_ints(hidden_dim, "hidden_dim") if len(hidden_dim) else ())
        )
        self.hidden_dims = hidden
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.output_shape = (self.output_dim,)
        self.hidden = mlp((self.latent_dim, *hidden), activation)
        self.output = nn.Linear(hidden[-1] if hidden else self.latent_dim, self.output_dim)

    def logits(self, z: Tensor) -> Tensor:
        """Logits of shape ``(batch, output_dim)`` for ``z`` of shape ``(batch, latent_dim)``."""
        out: Tensor = self.output(
            self.hidden(_latent_batch(z, self.latent_dim, self.output.weight))
        )
        return out


class ConvDecoder(_SigmoidDecoder):
    r"""Convolutional decoder for images, the mirror of :class:`~torchvae.ConvEncoder`.

    A linear layer maps :math:`z` to a small feature map (7x7 for 28x28 output with the
    defaults); stride-2 4x4 transposed convolutions double it back, and a size that is not
    a multiple of ``2 ** len(channels)`` is reached by cropping the last map's center (a
    30x30 image grows from 8x8 to 32x32 and is cropped to 30x30). Any image size works.

    Args:
        latent_dim: dimension of :math:`z`.
        output_shape: ``(channels, height, width)``, any size.
        channels: channels of the feature maps, from the smallest map upwards; each one
            is followed by a transposed convolution.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> dec = ConvDecoder(latent_dim=16)
        >>> dec(torch.randn(3, 16)).shape
        torch.Size([3, 1, 28, 28])
    """

    def __init__(
        self,
        latent_dim: int,
        output_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (64, 32),
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        shape = check_positive_ints(output_shape, "output_shape")
        if len(shape) != 3:
            raise ValueError(f"output_shape must be (channels, height, width), got {shape}")
        self.output_shape = (shape[0], shape[1], shape[2])
        self.channels = check_positive_ints(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one feature map, got ()")
        factor = 2 ** len(self.channels)
        c, h, w = self.output_shape
        self._start = (self.channels[0], -(-h // factor), -(-w // factor))
        self.project = nn.Sequential(
            nn.Linear(self.latent_dim, math.prod(self._start)), activation()
        )
        self.upsample = deconv_stack((*self.channels, c), activation)

    def logits(self, z: Tensor) -> Tensor:
        """Logits of shape ``(batch, *output_shape)`` for ``z`` of shape ``(batch, latent_dim)``."""
        first = cast(nn.Linear, self.project[0])
        h = self.project(_latent_batch(z, self.latent_dim, first.weight))
        out: Tensor = self.upsample(h.reshape(h.shape[0], *self._start))
        _, height, width = self.output_shape
        top, left = (out.shape[-2] - height) // 2, (out.shape[-1] - width) // 2
        if top or left:
            out = out[..., top : top + height, left : left + width]
        return out


def _decoder_config(m: Decoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "hidden_dims": list(m.hidden_dims),
        "output_dim": m.output_dim,
    }


def _conv_decoder_config(m: ConvDecoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "output_shape": list(m.output_shape),
        "channels": list(m.channels),
    }


register_serializable(
    Decoder,
    _decoder_config,
    lambda c: Decoder(c["latent_dim"], c["hidden_dims"], c["output_dim"]),
)
register_serializable(
    ConvDecoder,
    _conv_decoder_config,
    lambda c: ConvDecoder(c["latent_dim"], c["output_shape"], c["channels"]),
)
