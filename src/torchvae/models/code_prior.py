r"""A learned prior over VQ-VAE code maps: a gated PixelCNN over the grid of code indices.

A VQ-VAE's prior during training is uniform over the :math:`K` codes; to *sample*, a
prior :math:`p_\psi(k)` over whole code maps :math:`k \in \{0, \dots, K-1\}^{h \times w}`
is fitted afterwards on the codes of the training set (van den Oord et al., 2017, section
3.2). :class:`PixelCNNPrior` factorizes it in raster order,

.. math::
    p_\psi(k) = \prod_{i=1}^{h} \prod_{j=1}^{w} p_\psi(k_{ij} \mid k_{<(i,j)}),

each factor a softmax over the :math:`K` codes, computed for every position at once by
masked convolutions: the gated PixelCNN of van den Oord et al. (2016), whose vertical
stack sees the rows above and whose horizontal stack sees the positions to the left, so
that the receptive field has no blind spot. Training maximizes
:math:`\log p_\psi(k(x))` (:class:`~torchvae.CodePriorLoss`); sampling draws the
positions one after another. A sampled map decodes to an image with
:meth:`VQVAE.decode <torchvae.VQVAE.decode>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import (
    check_generator,
    check_positive_int,
    check_positive_ints,
    check_tensor,
    validation_enabled,
)
from ..io.registry import register_by_arguments
from ..priors._base import check_temperature

__all__ = ["CodePriorOutput", "PixelCNNPrior"]


class CodePriorOutput(NamedTuple):
    r"""What :meth:`PixelCNNPrior.forward` returns.

    Attributes:
        logits: the unnormalized :math:`\log p_\psi(k_{ij} = c \mid k_{<(i,j)})`,
            ``(batch, num_codes, h, w)``.
        log_prob: :math:`\log p_\psi(k)` of each map, ``(batch,)``, in nats.
    """

    logits: Tensor
    log_prob: Tensor


def _gate(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class _GatedLayer(nn.Module):
    """One gated layer: a vertical stack (rows up to this one) and a horizontal stack
    (this row, to the left); the first layer's horizontal stack excludes the position."""

    def __init__(self, channels: int, kernel_size: int, first: bool) -> None:
        super().__init__()
        self.k, self.first = kernel_size // 2, first
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.k + 1, 2 * self.k + 1))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.k + 1))
        self.down = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        k = self.k
        v_pre = self.vertical(F.pad(v, (k, k, k, 0)))  # row i sees rows i-k..i
        below = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row i sees rows < i only
        h_in = F.pad(h, (1, 0))[..., :-1] if self.first else h  # strictly left
        h_pre = self.horizontal(F.pad(h_in, (k, 0))) + self.down(below)
        h_out = self.out(_gate(h_pre))
        return _gate(v_pre), h_out if self.first else h + h_out


class PixelCNNPrior(nn.Module):
    r"""An autoregressive prior over ``(h, w)`` maps of codes in :math:`\{0, \dots, K-1\}`.

    Each code is embedded (``channels`` wide), ``layers`` gated layers with
    ``kernel_size`` kernels follow, and a head (ReLU, 1x1 convolution, ReLU, 1x1
    convolution) gives :math:`K` logits per position, normalized by a softmax over the
    codes. The receptive field of position :math:`(i, j)` grows by ``kernel_size // 2``
    rows and columns per layer and covers every earlier position once
    ``layers * (kernel_size // 2) >= max(h, w)`` (the defaults: maps up to 8x8, such as
    the 7x7 maps of :class:`~torchvae.VQEncoder` on 28x28 images). A forward pass costs
    about :math:`41\,C^2` multiply-adds per position and layer for ``kernel_size=5``
    (``channels`` :math:`= C`): with the defaults, 8M per 7x7 map, twice the benchmark's
    VQ-VAE per image.

    The forward pass takes the maps as a floating-point tensor of integer values (the
    :class:`~torchvae.Trainer` requires floating-point batches; see
    :func:`~torchvae.code_dataset`) or as integers.

    Args:
        num_codes: :math:`K`, the VQ-VAE codebook's size.
        code_shape: ``(h, w)`` of the code maps.
        channels: width of every layer.
        layers: number of gated layers.
        kernel_size: odd kernel size of the layers.

    Example:
        >>> prior = PixelCNNPrior(num_codes=8, code_shape=(4, 4), channels=16, layers=2)
        >>> maps = prior.sample(3, generator=torch.Generator().manual_seed(0))
        >>> maps.shape, prior.log_prob(maps).shape
        (torch.Size([3, 4, 4]), torch.Size([3]))
    """

    def __init__(
        self,
        num_codes: int,
        code_shape: Sequence[int],
        channels: int = 32,
        layers: int = 4,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        self.num_codes = check_positive_int(num_codes, "num_codes")
        shape = check_positive_ints(code_shape, "code_shape")
        if len(shape) != 2:
            raise ValueError(f"code_shape must be (h, w), got {tuple(code_shape)}")
        self.code_shape: tuple[int, int] = (shape[0], shape[1])
        self.channels = check_positive_int(channels, "channels")
        self.layers = check_positive_int(layers, "layers")
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0 or self.kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.embed = nn.Embedding(self.num_codes, self.channels)
        self.stack = nn.ModuleList(
            _GatedLayer(self.channels, self.kernel_size, first=i == 0) for i in range(self.layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(self.channels, self.channels, 1),
            nn.ReLU(),
            nn.Conv2d(self.channels, self.num_codes, 1),
        )

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this prior (JSON values)."""
        return {
            "num_codes": self.num_codes,
            "code_shape": list(self.code_shape),
            "channels": self.channels,
            "layers": self.layers,
            "kernel_size": self.kernel_size,
        }

    def _device(self) -> torch.device:
        return self.embed.weight.device

    def _codes(self, codes: object, name: str = "codes") -> Tensor:
        codes = check_tensor(codes, name)
        if codes.ndim != 3 or tuple(codes.shape[1:]) != self.code_shape:
            raise ValueError(
                f"{name} must have shape (batch, h, w) = (batch, {self.code_shape[0]}, "
                f"{self.code_shape[1]}), got shape {tuple(codes.shape)}"
            )
        if codes.device != self._device():
            raise ValueError(
                f"{name} is on {codes.device} but the prior's parameters are on {self._device()}"
            )
        if codes.dtype == torch.bool or codes.is_complex():
            raise TypeError(f"{name} must hold code indices, got dtype {codes.dtype}")
        if validation_enabled() and codes.numel():
            whole = bool((codes == codes.round()).all()) if codes.is_floating_point() else True
            low, high = float(codes.min()), float(codes.max())
            if not whole or low < 0 or high >= self.num_codes:
                raise ValueError(
                    f"{name} must hold integer code indices in [0, {self.num_codes}), got "
                    f"values in [{low:g}, {high:g}]" + ("" if whole else " that are not integers")
                )
        return codes.long()

    def logits(self, codes: Tensor) -> Tensor:
        r"""The logits of :math:`p_\psi(k_{ij} \mid k_{<(i,j)})`, ``(batch, K, h, w)``.

        Args:
            codes: integer code maps ``(batch, h, w)`` (long, or floats of integer value).
        """
        return self._logits(self._codes(codes))

    def _logits(self, index: Tensor) -> Tensor:
        e = self.embed(index).permute(0, 3, 1, 2)
        v, h = e, e
        for layer in self.stack:
            v, h = layer(v, h)
        out: Tensor = self.head(h)
        return out

    def forward(self, codes: Tensor) -> CodePriorOutput:
        """The logits and :math:`\\log p_\\psi(k)` of code maps ``(batch, h, w)``."""
        index = self._codes(codes)
        logits = self._logits(index)
        log_p = logits.float().log_softmax(1).gather(1, index.unsqueeze(1)).flatten(1).sum(1)
        return CodePriorOutput(logits, log_p)

    def log_prob(self, codes: Tensor) -> Tensor:
        r""":math:`\log p_\psi(k)` in nats, ``(batch,)``."""
        out: CodePriorOutput = self(codes)
        return out.log_prob

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        r"""Draw ``n`` code maps position by position in raster order, ``(n, h, w)`` int64.

        Each position's code comes from :math:`\operatorname{softmax}(\ell / t)` for the
        logits :math:`\ell` given the codes drawn so far (``h * w`` passes through the
        network, each over the rows drawn so far); :math:`t = 0` takes the most probable code.

        Args:
            n: how many maps.
            generator: optional random generator on the prior's device.
            temperature: :math:`t \geq 0`.
        """
        n = check_positive_int(n, "n")
        t = check_temperature(temperature)
        device = self._device()
        check_generator(generator, device)
        was_training = self.training
        self.eval()
        try:
            codes = torch.zeros(n, *self.code_shape, dtype=torch.long, device=device)
            height, width = self.code_shape
            for i in range(height):
                for j in range(width):
                    # rows below i do not reach row i: run on the rows so far
                    logits = self._logits(codes[:, : i + 1])[:, :, i, j].float()
                    if t == 0:
                        codes[:, i, j] = logits.argmax(1)
                    else:
                        probs = torch.softmax(logits / t, dim=1)
                        codes[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        finally:
            self.train(was_training)
        return codes

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, code_shape={self.code_shape}"


register_by_arguments(PixelCNNPrior)
