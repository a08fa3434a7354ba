r"""Residual convolutional networks for colour images, and the CIFAR-10 configuration.

:class:`ResNetEncoder` and :class:`ResNetDecoder` follow the encoder and decoder
interface of :class:`~torchvae.VAE` (``GaussianParams`` from the encoder; ``logits`` from
the decoder) and work for any image ``(C, H, W)`` large enough for their downsampling.
They are stages of pre-activation residual blocks (He et al., 2016),

.. math:: h \mapsto h + W_2 * a(W_1 * a(h)), \qquad a = \mathrm{LeakyReLU}_{0.2},

with 3x3 convolutions, joined by stride-2 4x4 convolutions that halve the feature maps
(transposed ones that double them in the decoder). The second convolution of each block
starts scaled by :math:`1/\sqrt{\text{blocks}}`, so that a deep stack starts close to the
identity. :func:`resnet_vae` puts them together with the discretized mixture of logistics;
its defaults are the CIFAR-10 configuration (32x32 colour images, 8x8 maps at the bottom).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from .._validation import check_positive_int, check_positive_ints
from ..gaussian import GaussianParams
from ..io.registry import Config, register_serializable
from ..likelihoods import Likelihood, check_likelihood
from ..likelihoods._discretized import DiscretizedLogisticMixture
from ..posteriors import Posterior
from ..priors import Prior
from ._nn import Activation, check_overflow, halved, leaky_relu, to_batch_of
from .decoders import _latent_batch, _SigmoidDecoder
from .encoders import _GaussianEncoder
from .vae import VAE

__all__ = ["ResNetDecoder", "ResNetEncoder", "ResidualBlock", "resnet_vae"]


class ResidualBlock(nn.Module):
    r"""A pre-activation residual block: :math:`h + W_2 * a(W_1 * a(h))`, 3x3 convolutions.

    Args:
        channels: channels in and out.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.
        scale: initial scale of :math:`W_2` and its bias (below 1 for deep stacks).
    """

    def __init__(
        self, channels: int, activation: Activation = leaky_relu, scale: float = 1.0
    ) -> None:
        super().__init__()
        c = check_positive_int(channels, "channels")
        second = nn.Conv2d(c, c, 3, padding=1)
        with torch.no_grad():
            second.weight.mul_(scale)
            cast(Tensor, second.bias).mul_(scale)
        self.body = nn.Sequential(activation(), nn.Conv2d(c, c, 3, padding=1), activation(), second)

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = h + self.body(h)
        return out


def _stage(channels: int, blocks: int, activation: Activation, scale: float) -> list[nn.Module]:
    return [ResidualBlock(channels, activation, scale) for _ in range(blocks)]


def _check_widths(channels: Sequence[int], blocks: int) -> tuple[tuple[int, ...], int]:
    widths = check_positive_ints(channels, "channels")
    if not widths:
        raise ValueError("channels must name at least one stage, got ()")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ValueError(f"blocks must be an int >= 0 (residual blocks per stage), got {blocks!r}")
    return widths, blocks


class ResNetEncoder(_GaussianEncoder):
    r"""Residual convolutional encoder: stages of residual blocks, halved between stages.

    A 3x3 convolution lifts the image to ``channels[0]``; each stage runs ``blocks``
    residual blocks at its width, and a stride-2 4x4 convolution halves the maps (rounding
    down) into the next (32x32 -> 16x16 -> 8x8 with three stages); linear heads on the
    last maps give :math:`\mu` and :math:`\log\sigma^2`.

    Args:
        latent_dim: dimension of :math:`z`.
        input_shape: ``(channels, height, width)``; height and width at least
            ``2 ** (len(channels) - 1)``. Flat input with as many features is reshaped.
        channels: width of each stage, from the input's resolution down.
        blocks: residual blocks per stage (0 gives a plain strided network).
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> enc = ResNetEncoder(latent_dim=16, channels=(8, 16), blocks=1)
        >>> enc(torch.rand(2, 3, 32, 32)).mean.shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        latent_dim: int,
        input_shape: Sequence[int] = (3, 32, 32),
        channels: Sequence[int] = (64, 128, 256),
        blocks: int = 2,
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        shape = check_positive_ints(input_shape, "input_shape")
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width), got {shape}")
        self.input_shape: tuple[int, int, int] = (shape[0], shape[1], shape[2])
        self.channels, self.blocks = _check_widths(channels, blocks)
        c, h, w = self.input_shape
        factor = 2 ** (len(self.channels) - 1)
        if h < factor or w < factor:
            raise ValueError(
                f"input_shape's height and width must be at least 2**(len(channels) - 1) = "
                f"{factor} (each stage after the first halves them), got {h}x{w}"
            )
        scale = 1.0 / math.sqrt(max(1, self.blocks))
        layers: list[nn.Module] = [nn.Conv2d(c, self.channels[0], 3, padding=1)]
        for i, width in enumerate(self.channels):
            layers += _stage(width, self.blocks, activation, scale)
            if i + 1 < len(self.channels):
                layers.append(nn.Conv2d(width, self.channels[i + 1], 4, stride=2, padding=1))
        layers.append(activation())
        self.features = nn.Sequential(*layers)
        steps = len(self.channels) - 1
        features = self.channels[-1] * halved(h, steps) * halved(w, steps)
        self.mean = nn.Linear(features, self.latent_dim)
        self.log_var = nn.Linear(features, self.latent_dim)

    def forward(self, x: Tensor) -> GaussianParams:
        """Posterior parameters for images ``(batch, C, H, W)`` or flat ``(batch, C*H*W)``."""
        x = to_batch_of(x, self.input_shape, "x", self.mean.weight)
        h = self.features(x).flatten(1)
        params = GaussianParams(self.mean(h), self.log_var(h))
        check_overflow(x, "x", *params)
        return params


class ResNetDecoder(_SigmoidDecoder):
    r"""Residual convolutional decoder, the mirror of :class:`ResNetEncoder`.

    A linear layer maps :math:`z` to ``channels[0]`` maps of the smallest size
    (:math:`\lceil H / 2^{n-1} \rceil`, for :math:`n` stages); each stage runs ``blocks``
    residual blocks, and a stride-2 4x4 transposed convolution doubles the maps into the
    next; a 3x3 convolution gives ``output_shape[0]`` channels, cropped at the centre to
    ``output_shape`` when the doubling overshoots. For a likelihood with several
    parameters per pixel, size it with the likelihood:
    ``ResNetDecoder(d, like.params_shape((3, 32, 32)))``.

    Args:
        latent_dim: dimension of :math:`z`.
        output_shape: ``(channels, height, width)`` of the logits, any size.
        channels: width of each stage, from the smallest maps up.
        blocks: residual blocks per stage.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> dec = ResNetDecoder(latent_dim=16, output_shape=(100, 32, 32), channels=(16, 8))
        >>> dec.logits(torch.randn(2, 16)).shape
        torch.Size([2, 100, 32, 32])
    """

    def __init__(
        self,
        latent_dim: int,
        output_shape: Sequence[int] = (3, 32, 32),
        channels: Sequence[int] = (256, 128, 64),
        blocks: int = 2,
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        shape = check_positive_ints(output_shape, "output_shape")
        if len(shape) != 3:
            raise ValueError(f"output_shape must be (channels, height, width), got {shape}")
        self.output_shape = (shape[0], shape[1], shape[2])
        self.channels, self.blocks = _check_widths(channels, blocks)
        c, h, w = self.output_shape
        factor = 2 ** (len(self.channels) - 1)
        self._start = (self.channels[0], -(-h // factor), -(-w // factor))
        self.project = nn.Linear(self.latent_dim, math.prod(self._start))
        scale = 1.0 / math.sqrt(max(1, self.blocks))
        layers: list[nn.Module] = []
        for i, width in enumerate(self.channels):
            layers += _stage(width, self.blocks, activation, scale)
            if i + 1 < len(self.channels):
                layers += [
                    activation(),
                    nn.ConvTranspose2d(width, self.channels[i + 1], 4, stride=2, padding=1),
                ]
        layers += [activation(), nn.Conv2d(self.channels[-1], c, 3, padding=1)]
        self.upsample = nn.Sequential(*layers)

    def logits(self, z: Tensor) -> Tensor:
        """Logits of shape ``(batch, *output_shape)`` for ``z`` of shape ``(batch, latent_dim)``."""
        h = self.project(_latent_batch(z, self.latent_dim, self.project.weight))
        out = cast(Tensor, self.upsample(h.reshape(h.shape[0], *self._start)))
        _, height, width = self.output_shape
        if out.shape[-2:] != (height, width):  # an overshoot of 1 has top == left == 0
            top, left = (out.shape[-2] - height) // 2, (out.shape[-1] - width) // 2
            out = out[..., top : top + height, left : left + width]
        return out


def resnet_vae(
    input_shape: Sequence[int] = (3, 32, 32),
    latent_dim: int = 128,
    likelihood: Likelihood | None = None,
    channels: Sequence[int] = (64, 128, 256),
    blocks: int = 2,
    *,
    prior: Prior | None = None,
    posterior: Posterior | None = None,
) -> VAE:
    r"""A residual VAE for colour images; the defaults are the CIFAR-10 configuration.

    :class:`ResNetEncoder` and :class:`ResNetDecoder` (``channels`` reversed) around
    ``latent_dim`` latents, the decoder sized by the likelihood's ``params_shape``. The
    default likelihood is the discretized mixture of 10 logistics of PixelCNN++
    (:class:`~torchvae.DiscretizedLogisticMixture`), whose loss is :math:`-\log P(x)` of the
    8-bit images (bits/dim directly, train on ``x / 255`` without dequantization).

    Args:
        input_shape: ``(C, H, W)`` of the images; ``(3, 32, 32)`` for CIFAR-10.
        latent_dim: dimension of :math:`z`.
        likelihood: :math:`p_\theta(x \mid z)`; default ``DiscretizedLogisticMixture(10)``.
        channels: stage widths of the encoder, from the input down.
        blocks: residual blocks per stage.
        prior: :math:`p(z)`; default standard normal.
        posterior: the family of :math:`q_\phi(z \mid x)`; default diagonal Gaussian.

    Example:
        >>> model = resnet_vae(latent_dim=8, channels=(8, 16), blocks=1)
        >>> out = model(torch.randint(0, 256, (2, 3, 32, 32)) / 255)
        >>> out.logits.shape, model.sample(2).shape
        (torch.Size([2, 100, 32, 32]), torch.Size([2, 3, 32, 32]))
    """
    like = DiscretizedLogisticMixture(10) if likelihood is None else check_likelihood(likelihood)
    encoder = ResNetEncoder(latent_dim, input_shape, channels, blocks)
    widths = tuple(reversed(encoder.channels))
    decoder = ResNetDecoder(latent_dim, like.params_shape(encoder.input_shape), widths, blocks)
    return VAE(encoder, decoder, likelihood=like, prior=prior, posterior=posterior)


def _resnet_config(m: ResNetEncoder | ResNetDecoder) -> Config:
    shape = m.input_shape if isinstance(m, ResNetEncoder) else m.output_shape
    key = "input_shape" if isinstance(m, ResNetEncoder) else "output_shape"
    return {
        "latent_dim": m.latent_dim,
        key: list(shape),
        "channels": list(m.channels),
        "blocks": m.blocks,
    }


register_serializable(
    ResNetEncoder,
    _resnet_config,
    lambda c: ResNetEncoder(c["latent_dim"], c["input_shape"], c["channels"], c["blocks"]),
)
register_serializable(
    ResNetDecoder,
    _resnet_config,
    lambda c: ResNetDecoder(c["latent_dim"], c["output_shape"], c["channels"], c["blocks"]),
)
