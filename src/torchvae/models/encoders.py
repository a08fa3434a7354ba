r"""Encoders: networks that map ``x`` to the parameters of :math:`q_\phi(z \mid x)`.

Every encoder returns a :class:`~torchvae.GaussianParams` ``(mean, log_var)``, each of
shape ``(batch, latent_dim)``, and has an integer attribute ``latent_dim``. That is the
whole interface :class:`~torchvae.VAE` relies on: any ``nn.Module`` that follows it
plugs in.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.distributions import Independent, Normal

from .._validation import check_positive_int, check_positive_ints
from ..gaussian import GaussianParams
from ..io.registry import Config, register_serializable
from ._nn import Activation, check_overflow, conv_stack, halved, leaky_relu, mlp, to_batch_of

__all__ = ["ConvEncoder", "Encoder"]


class _GaussianEncoder(nn.Module):
    """Base for encoders: ``posterior(x)`` is ``forward(x)`` as a distribution."""

    latent_dim: int

    def posterior(self, x: Tensor) -> Independent[Normal]:
        r""":math:`q_\phi(z \mid x)` as a torch distribution, event shape ``(latent_dim,)``."""
        params: GaussianParams = self(x)
        return params.distribution()


class Encoder(_GaussianEncoder):
    r"""The textbook's MLP encoder, generalized to any list of hidden sizes.

    .. math::
        h = \mathrm{LeakyReLU}_{0.2}(W_L \cdots \mathrm{LeakyReLU}_{0.2}(W_1 x)),\quad
        \mu = W_\mu h,\quad \log\sigma^2 = W_\sigma h

    Args:
        input_dim: features per example, e.g. 784 for 28x28 images. Input of shape
            ``(batch, input_dim)`` or any ``(batch, ...)`` with that many features.
        hidden_dim: one size, used for the textbook's two hidden layers, or a sequence of
            sizes, one hidden layer each (an empty sequence gives a linear encoder).
        latent_dim: dimension of :math:`z`.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> import torch
        >>> enc = Encoder(input_dim=784, hidden_dim=400, latent_dim=200)
        >>> mean, log_var = enc(torch.rand(5, 784))
        >>> tuple(mean.shape), tuple(log_var.shape)
        ((5, 200), (5, 200))
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int | Sequence[int],
        latent_dim: int,
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.input_dim = check_positive_int(input_dim, "input_dim")
        hidden = (
            (check_positive_int(hidden_dim, "hidden_dim"),) * 2
            if isinstance(hidden_dim, int)
            else (check_positive_ints(hidden_dim, "hidden_dim") if len(hidden_dim) else ())
        )
        self.hidden_dims = hidden
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.hidden = mlp((self.input_dim, *hidden), activation)
        width = hidden[-1] if hidden else self.input_dim
        self.mean = nn.Linear(width, self.latent_dim)
        self.log_var = nn.Linear(width, self.latent_dim)

    def forward(self, x: Tensor) -> GaussianParams:
        """Posterior parameters for ``x``: ``(batch, input_dim)`` or any trailing layout."""
        x = to_batch_of(x, (self.input_dim,), "x", self.mean.weight)
        h = self.hidden(x)
        params = GaussianParams(self.mean(h), self.log_var(h))
        check_overflow(x, "x", *params)
        return params


class ConvEncoder(_GaussianEncoder):
    r"""Convolutional encoder for images, interchangeable with :class:`Encoder`.

    Stride-2 4x4 convolutions with LeakyReLU(0.2) halve the image at each layer, rounding
    down (28x28 -> 14x14 -> 7x7 with the defaults, 3x32x32 -> 16x16 -> 8x8); linear heads
    give :math:`\mu` and :math:`\log\sigma^2`. Any image size works whose sides are at
    least ``2 ** len(channels)``.

    Args:
        latent_dim: dimension of :math:`z`.
        input_shape: ``(channels, height, width)``, any size with height and width at
            least ``2 ** len(channels)``. Flat input with as many features is reshaped.
        channels: output channels of each convolution.
        activation: factory of the activation module; default ``LeakyReLU(0.2)``.

    Example:
        >>> import torch
        >>> enc = ConvEncoder(latent_dim=16)
        >>> enc(torch.rand(3, 1, 28, 28)).mean.shape
        torch.Size([3, 16])
    """

    def __init__(
        self,
        latent_dim: int,
        input_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (32, 64),
        activation: Activation = leaky_relu,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        shape = check_positive_ints(input_shape, "input_shape")
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width), got {shape}")
        self.input_shape: tuple[int, int, int] = (shape[0], shape[1], shape[2])
        self.channels = check_positive_ints(channels, "channels")
        factor = 2 ** len(self.channels)
        c, h, w = self.input_shape
        if h < factor or w < factor:
            raise ValueError(
                f"input_shape's height and width must be at least 2**len(channels) = "
                f"{factor} (each convolution halves them), got {h}x{w}"
            )
        self.features = conv_stack((c, *self.channels), activation)
        out_h, out_w = halved(h, len(self.channels)), halved(w, len(self.channels))
        width = self.channels[-1] * out_h * out_w if self.channels else c * h * w
        self.mean = nn.Linear(width, self.latent_dim)
        self.log_var = nn.Linear(width, self.latent_dim)

    def forward(self, x: Tensor) -> GaussianParams:
        """Posterior parameters for images ``(batch, C, H, W)`` or flat ``(batch, C*H*W)``."""
        x = to_batch_of(x, self.input_shape, "x", self.mean.weight)
        h = self.features(x).flatten(1)
        params = GaussianParams(self.mean(h), self.log_var(h))
        check_overflow(x, "x", *params)
        return params


def _encoder_config(m: Encoder) -> Config:
    return {
        "input_dim": m.input_dim,
        "hidden_dims": list(m.hidden_dims),
        "latent_dim": m.latent_dim,
    }


def _conv_encoder_config(m: ConvEncoder) -> Config:
    return {
        "latent_dim": m.latent_dim,
        "input_shape": list(m.input_shape),
        "channels": list(m.channels),
    }


register_serializable(
    Encoder,
    _encoder_config,
    lambda c: Encoder(c["input_dim"], c["hidden_dims"], c["latent_dim"]),
)
register_serializable(
    ConvEncoder,
    _conv_encoder_config,
    lambda c: ConvEncoder(c["latent_dim"], c["input_shape"], c["channels"]),
)
