r"""Convolutional encoder and decoder for a :class:`~torchvae.VQVAE`.

The encoder maps an image to a map of vectors :math:`z_e(x) \in \mathbb{R}^{D \times h
\times w}` (no distribution: the VQ-VAE's posterior is the one-hot choice of the nearest
code at each position); the decoder maps a map of codes back to the likelihood's
parameters. As in van den Oord et al. (2017): stride-2 4x4 convolutions with ReLU halve
the image at each level (28x28 -> 14x14 -> 7x7 with the defaults), optional residual
blocks (ReLU, 3x3 convolution, ReLU, 1x1 convolution, plus the input), and a 1x1
convolution to (or a 3x3 convolution from) the embedding dimension :math:`D`; the decoder
mirrors it with transposed convolutions.

Both compute in the channels-last memory format (their weights are stored so, and their
input is laid out so on entry): oneDNN's CPU convolutions then skip the reorders of every
call, which made a training step of the benchmark's VQ-VAE about 1.3x faster here.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_positive_int, check_positive_ints
from ..io.registry import register_by_arguments

__all__ = ["VQDecoder", "VQEncoder"]


class _Residual(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(x)
        return out


def _image_shape(shape: Sequence[int], name: str, levels: int) -> tuple[int, int, int]:
    sizes = check_positive_ints(shape, name)
    if len(sizes) != 3:
        raise ValueError(f"{name} must be (channels, height, width), got {tuple(shape)}")
    factor = 2**levels
    if sizes[1] % factor or sizes[2] % factor:
        raise ValueError(
            f"{name}'s height and width must be multiples of 2**len(channels) = {factor} "
            f"(each level halves them exactly), got {sizes[1]}x{sizes[2]}; pad or crop the "
            f"images, or use fewer levels"
        )
    return sizes[0], sizes[1], sizes[2]


def _check_blocks(res_blocks: object, res_channels: object, width: int) -> tuple[int, int]:
    if isinstance(res_blocks, bool) or not isinstance(res_blocks, int) or res_blocks < 0:
        raise ValueError(f"res_blocks must be an int >= 0, got {res_blocks!r}")
    hidden = width if res_channels is None else check_positive_int(res_channels, "res_channels")
    return res_blocks, hidden


class VQEncoder(nn.Module):
    r"""Image to a map of vectors :math:`z_e(x)`, ``(batch, embedding_dim, h, w)``.

    Args:
        input_shape: ``(channels, height, width)``; height and width multiples of
            ``2 ** len(channels)``. Flat input with as many features is reshaped.
        channels: output channels of each stride-2 convolution.
        embedding_dim: :math:`D`, the codebook's dimension.
        res_blocks: residual blocks after the last convolution.
        res_channels: hidden channels of a residual block (default: ``channels[-1]``).

    Attributes:
        code_shape: ``(h, w)`` of the map, ``(height, width) / 2 ** len(channels)``.

    Example:
        >>> import torch
        >>> VQEncoder((1, 28, 28), (32, 64), embedding_dim=16)(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 16, 7, 7])
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (32, 64),
        embedding_dim: int = 16,
        res_blocks: int = 0,
        res_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_ints(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one convolution, got ()")
        self.input_shape = _image_shape(input_shape, "input_shape", len(self.channels))
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.res_blocks, self.res_channels = _check_blocks(
            res_blocks, res_channels, self.channels[-1]
        )
        factor = 2 ** len(self.channels)
        self.code_shape = (self.input_shape[1] // factor, self.input_shape[2] // factor)
        layers: list[nn.Module] = []
        for c_in, c_out in pairwise((self.input_shape[0], *self.channels)):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        if self.res_blocks:
            layers.pop()  # a residual block starts with its own ReLU
            layers += [
                _Residual(self.channels[-1], self.res_channels) for _ in range(self.res_blocks)
            ]
            layers.append(nn.ReLU())
        layers.append(nn.Conv2d(self.channels[-1], self.embedding_dim, 1))
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this network (JSON values)."""
        return {
            "input_shape": list(self.input_shape),
            "channels": list(self.channels),
            "embedding_dim": self.embedding_dim,
            "res_blocks": self.res_blocks,
            "res_channels": self.res_channels,
        }

    def forward(self, x: Tensor) -> Tensor:
        """:math:`z_e(x)` for images ``(batch, C, H, W)`` or flat ``(batch, C*H*W)``."""
        x = x.reshape(x.shape[0], *self.input_shape)
        out: Tensor = self.net(x.contiguous(memory_format=torch.channels_last))
        return out


class VQDecoder(nn.Module):
    r"""A map of codes ``(batch, embedding_dim, h, w)`` to the likelihood's parameters.

    Args:
        output_shape: ``(channels, height, width)`` of the decoder's output (the data's
            shape for the built-in likelihoods); height and width multiples of
            ``2 ** len(channels)``.
        channels: channels of the feature maps, from the smallest map upwards; each is
            followed by a stride-2 transposed convolution.
        embedding_dim: :math:`D`.
        res_blocks: residual blocks before the first transposed convolution.
        res_channels: hidden channels of a residual block (default: ``channels[0]``).

    Example:
        >>> import torch
        >>> VQDecoder((1, 28, 28), (64, 32), embedding_dim=16)(torch.randn(2, 16, 7, 7)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        output_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (64, 32),
        embedding_dim: int = 16,
        res_blocks: int = 0,
        res_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_ints(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one feature map, got ()")
        self.output_shape = _image_shape(output_shape, "output_shape", len(self.channels))
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.res_blocks, self.res_channels = _check_blocks(
            res_blocks, res_channels, self.channels[0]
        )
        factor = 2 ** len(self.channels)
        self.code_shape = (self.output_shape[1] // factor, self.output_shape[2] // factor)
        layers: list[nn.Module] = [nn.Conv2d(self.embedding_dim, self.channels[0], 3, padding=1)]
        layers += [_Residual(self.channels[0], self.res_channels) for _ in range(self.res_blocks)]
        layers.append(nn.ReLU())
        sizes = (*self.channels, self.output_shape[0])
        for c_in, c_out in pairwise(sizes):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        layers.pop()  # the output is unconstrained: the likelihood's parameters
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this network (JSON values)."""
        return {
            "output_shape": list(self.output_shape),
            "channels": list(self.channels),
            "embedding_dim": self.embedding_dim,
            "res_blocks": self.res_blocks,
            "res_channels": self.res_channels,
        }

    def logits(self, z_q: Tensor) -> Tensor:
        """The likelihood's parameters, ``(batch, *output_shape)``, for codes ``z_q``."""
        out: Tensor = self.net(z_q.contiguous(memory_format=torch.channels_last))
        return out

    def forward(self, z_q: Tensor) -> Tensor:
        """Same as :meth:`logits`."""
        return self.logits(z_q)


register_by_arguments(VQEncoder)
register_by_arguments(VQDecoder)
