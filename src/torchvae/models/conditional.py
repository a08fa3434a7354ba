r"""The conditional VAE: encoder and decoder both see a class label :math:`y`.

.. math::
    q_\phi(z \mid x, y),\qquad p_\theta(x \mid z, y),\qquad p(z \mid y),

where :math:`e(y)` is the label's one-hot code or a learned embedding (Sohn et al.,
2015). It is the same :class:`~torchvae.VAE`, built with ``num_classes``: every prior,
posterior and likelihood works with it; this class only keeps the label a positional
argument of its methods and adds constructors that size the networks for the label.
The objective is the ELBO of :math:`\log p_\theta(x \mid y)`, so
:class:`~torchvae.ELBOLoss`, :class:`~torchvae.IWAELoss` and
:func:`~torchvae.log_likelihood` (with ``y=labels``) apply unchanged.

**How the label enters.** The decoder always sees the concatenation
:math:`[z, e(y)]`, so its ``latent_dim`` must be ``latent_dim + embedding_dim``. The
encoder sees :math:`[\operatorname{flatten}(x), e(y)]` (so an MLP encoder has
``input_dim = features + embedding_dim``), except an encoder with a 3-tuple attribute
``input_shape = (channels, height, width)`` such as :class:`~torchvae.ConvEncoder`: there
:math:`e(y)` is broadcast over the image as ``embedding_dim`` extra channels, so its
``input_shape`` has ``channels = image channels + embedding_dim``. The constructors
:meth:`ConditionalVAE.mlp` and :meth:`ConditionalVAE.conv` do this arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._validation import check_positive_int, check_positive_ints
from ..io.registry import register_serializable
from ._labels import EmbeddingKind, embedding_width
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .vae import VAE, VAEOutput, _parts, _vae_config, _with_sampler

if TYPE_CHECKING:
    from ..samplers.gmm import LatentSampler

__all__ = ["ConditionalVAE", "EmbeddingKind"]


class ConditionalVAE(VAE):
    r"""A :class:`~torchvae.VAE` conditioned on a class label, with the label positional.

    ``ConditionalVAE(encoder, decoder, 10)`` is ``VAE(encoder, decoder, num_classes=10)``;
    ``sample(n, y=3)`` draws :math:`z \sim p(z \mid y{=}3)` and decodes it with the label
    3, so it generates the class asked for. The Trainer and
    :func:`~torchvae.log_likelihood` call conditional models as
    ``model(x, y=labels, n_samples=...)``; the :class:`~torchvae.VAEOutput` they return is
    the one any VAE returns, so the losses take it as it is.

    Labels are integer tensors of shape ``(batch,)`` with values in ``[0, num_classes)``;
    anything else raises an error that says what was given.

    Args:
        encoder: the inference network; returns ``(mean, log_var)`` of shape
            ``(batch, latent_dim)`` for the input joined with the label (see the module's
            documentation), and has an int attribute ``latent_dim`` (or the decoder does).
        decoder: the generative network on :math:`[z, e(y)]`.
        num_classes: number of classes :math:`K`; labels lie in ``[0, K)``.
        embedding: ``"one_hot"`` (:math:`e(y)` is the one-hot vector, no parameters) or
            ``"learned"`` (an ``nn.Embedding`` trained with the model).
        embedding_dim: width of :math:`e(y)`; only for ``"learned"`` (default
            ``num_classes``).
        **parts: ``likelihood=``, ``prior=``, ``posterior=``, as for :class:`~torchvae.VAE`.

    Raises:
        TypeError: ``encoder`` or ``decoder`` is not an ``nn.Module``.
        ValueError: the networks' sizes do not fit ``latent_dim`` and ``embedding_dim``
            as described above, or a bad ``num_classes``/``embedding``/``embedding_dim``.

    Example:
        >>> model = ConditionalVAE.mlp(input_dim=784, hidden_dim=64, latent_dim=8, num_classes=10)
        >>> x, y = torch.rand(5, 784), torch.tensor([0, 1, 2, 3, 4])
        >>> out = model(x, y)
        >>> out.x_hat.shape, out.z.shape
        (torch.Size([5, 784]), torch.Size([5, 8]))
        >>> model.sample(4, y=3).shape
        torch.Size([4, 784])
        >>> same = ConditionalVAE(Encoder(784 + 10, 64, 8), Decoder(8 + 10, 64, 784), 10)
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        num_classes: int,
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
        **parts: Any,
    ) -> None:
        super().__init__(
            encoder,
            decoder,
            num_classes=check_positive_int(num_classes, "num_classes"),
            embedding=embedding,
            embedding_dim=embedding_dim,
            **parts,
        )

    @classmethod
    def mlp(
        cls,
        input_dim: int = 784,
        hidden_dim: int | Sequence[int] = 400,
        latent_dim: int = 20,
        num_classes: int = 10,
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
        **parts: Any,
    ) -> ConditionalVAE:
        r"""The textbook's MLP encoder and decoder, widened to take the label.

        Builds ``Encoder(input_dim + E, hidden_dim, latent_dim)`` and
        ``Decoder(latent_dim + E, hidden_dim, input_dim)`` with ``E = embedding_dim``.

        Args:
            input_dim: features per example of ``x``.
            hidden_dim: hidden sizes, as for :class:`~torchvae.Encoder`.
            latent_dim: dimension of :math:`z`.
            num_classes: number of classes.
            embedding: ``"one_hot"`` or ``"learned"``.
            embedding_dim: width of a learned embedding.
            **parts: ``likelihood=``, ``prior=``, ``posterior=``, as for :class:`~torchvae.VAE`.

        Returns:
            A new :class:`ConditionalVAE`.
        """
        num_classes = check_positive_int(num_classes, "num_classes")
        width = embedding_width(embedding, num_classes, embedding_dim)
        input_dim = check_positive_int(input_dim, "input_dim")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        return cls(
            Encoder(input_dim + width, hidden_dim, latent_dim),
            Decoder(latent_dim + width, hidden_dim, input_dim),
            num_classes,
            embedding,
            embedding_dim,
            **parts,
        )

    @classmethod
    def conv(
        cls,
        latent_dim: int = 20,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (32, 64),
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
        **parts: Any,
    ) -> ConditionalVAE:
        r"""Convolutional encoder and decoder, the label as extra input channels.

        Builds ``ConvEncoder(latent_dim, (C + E, H, W), channels)`` and
        ``ConvDecoder(latent_dim + E, (C, H, W), reversed(channels))``.

        Args:
            latent_dim: dimension of :math:`z`.
            num_classes: number of classes.
            input_shape: ``(C, H, W)`` of one image.
            channels: the encoder's convolution channels (the decoder uses them reversed).
            embedding: ``"one_hot"`` or ``"learned"``.
            embedding_dim: width of a learned embedding.
            **parts: ``likelihood=``, ``prior=``, ``posterior=``, as for :class:`~torchvae.VAE`.

        Returns:
            A new :class:`ConditionalVAE`.
        """
        num_classes = check_positive_int(num_classes, "num_classes")
        width = embedding_width(embedding, num_classes, embedding_dim)
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        shape = check_positive_ints(input_shape, "input_shape")
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width), got {shape}")
        chans = check_positive_ints(channels, "channels")
        return cls(
            ConvEncoder(latent_dim, (shape[0] + width, shape[1], shape[2]), chans),
            ConvDecoder(latent_dim + width, shape, tuple(reversed(chans))),
            num_classes,
            embedding,
            embedding_dim,
            **parts,
        )

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        y: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        r"""Encode with the label, sample :math:`z` by reparameterization, decode with the label.

        See :meth:`VAE.forward`; ``y`` holds integer labels ``(batch,)``.
        """
        return super().forward(x, y, n_samples, generator)

    def reconstruct(  # type: ignore[override]
        self,
        x: Tensor,
        y: Tensor,
        sample: bool = False,
        generator: torch.Generator | None = None,
        draw: bool = False,
    ) -> Tensor:
        r"""Reconstructions with ``x``'s shape; see :meth:`VAE.reconstruct`.

        Decoding the posterior location of ``(x, y)`` with another label instead
        (``decode(encode(x, y).mean, y_new)``) transfers the style of ``x`` to ``y_new``.
        """
        return self._reconstruct(x, y, sample, generator, draw)

    def sample(  # type: ignore[override]
        self,
        n: int,
        y: int | Sequence[int] | Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        draw: bool = False,
        sampler: LatentSampler | None = None,
    ) -> Tensor:
        r"""Draw ``n`` examples of the classes ``y``; see :meth:`VAE.sample`.

        Args:
            n: how many.
            y: one class for all (an ``int``), or ``n`` labels (a sequence of ints or an
                integer tensor of shape ``(n,)``).
            generator: optional random generator on the parameters' device.
            temperature: the prior's spread.
            draw: return draws from :math:`p_\theta(x \mid z, y)` instead of its mean.
            sampler: draw :math:`z` from it instead of the prior (see :meth:`VAE.sample`).
        """
        return self._sample(n, y, generator, temperature, draw, sampler)

    def interpolate(  # type: ignore[override]
        self,
        x1: Tensor,
        x2: Tensor,
        y1: Tensor,
        y2: Tensor | None = None,
        steps: int = 10,
    ) -> Tensor:
        r"""Decode points between the posterior locations of ``(x1, y1)`` and ``(x2, y2)``.

        .. math::
            z_t = (1 - t)\,\mu(x_1, y_1) + t\,\mu(x_2, y_2),\qquad
            e_t = (1 - t)\,e(y_1) + t\,e(y_2)

        for ``steps`` values of :math:`t` from 0 to 1; :math:`z_t` is decoded with the code
        :math:`e_t` (with ``y2=None`` the label stays ``y1`` throughout).
        """
        return self._interpolate(x1, x2, y1, y2, steps)


register_serializable(
    ConditionalVAE,
    _vae_config,
    lambda c: _with_sampler(
        ConditionalVAE(
            c["encoder"],
            c["decoder"],
            c["num_classes"],
            c["embedding"],
            c["embedding_dim"],
            **_parts(c),
        ),
        c,
    ),
)
