r"""The conditional VAE: encoder and decoder both see a class label :math:`y`.

.. math::
    q_\phi(z \mid x, y) = \mathcal{N}\!\left(\mu_\phi(x, e(y)),\
    \operatorname{diag}\sigma^2_\phi(x, e(y))\right),\qquad
    p_\theta(x \mid z, y),\qquad p(z) = \mathcal{N}(0, I),

where :math:`e(y)` is the label's one-hot code or a learned embedding (Sohn et al.,
2015). The objective is the ELBO of :math:`\log p_\theta(x \mid y)`, so
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

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from ._validation import (
    check_floating,
    check_generator,
    check_positive_int,
    check_positive_ints,
    check_real,
    check_tensor,
    validation_enabled,
)
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .gaussian import GaussianParams, standard_normal
from .model import (
    VAEOutput,
    check_posterior,
    make_output,
    prepare_endpoints,
    prepare_input,
    run_decoder,
    run_encoder,
)

__all__ = ["ConditionalVAE", "EmbeddingKind"]

EmbeddingKind = Literal["one_hot", "learned"]
"""How a label enters the networks: ``"one_hot"`` (a fixed one-hot code of width
``num_classes``) or ``"learned"`` (an ``nn.Embedding`` of width ``embedding_dim``)."""


class _OneHot(nn.Module):
    """Labels ``(batch,)`` to one-hot rows ``(batch, num_classes)``; no parameters."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def _embedding_width(embedding: object, num_classes: int, embedding_dim: object) -> int:
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


class ConditionalVAE(nn.Module):
    r"""A VAE whose encoder and decoder are both conditioned on a class label.

    ``sample(n, y=3)`` draws :math:`z \sim \mathcal{N}(0, I)` and decodes it with the
    label 3, so it generates the class asked for. Models with ``is_conditional = True``
    are called as ``model(x, y=labels, n_samples=...)`` by the Trainer and by
    :func:`~torchvae.log_likelihood`; the :class:`~torchvae.VAEOutput` they return is
    the one a :class:`~torchvae.VAE` returns, so the losses take it as it is.

    See the module's documentation for how the label enters each network. Labels are
    integer tensors of shape ``(batch,)`` with values in ``[0, num_classes)``; anything
    else raises an error that says what was given.

    Args:
        encoder: the inference network :math:`q_\phi(z \mid x, y)`; returns
            ``(mean, log_var)`` of shape ``(batch, latent_dim)`` for the concatenated
            input, and has an int attribute ``latent_dim`` (or the decoder does).
        decoder: the generative network; ``decoder.logits([z, e(y)])`` (or a ``forward``
            returning values in [0, 1]) gives ``x``'s number of features per example.
        num_classes: number of classes :math:`K`; labels lie in ``[0, K)``.
        embedding: ``"one_hot"`` (:math:`e(y)` is the one-hot vector, no parameters) or
            ``"learned"`` (an ``nn.Embedding`` trained with the model).
        embedding_dim: width of :math:`e(y)`; only for ``"learned"`` (default
            ``num_classes``).

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

    is_conditional: ClassVar[bool] = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        num_classes: int,
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.embedding_kind: EmbeddingKind = embedding
        self.embedding_dim = _embedding_width(embedding, self.num_classes, embedding_dim)
        width = self.embedding_dim
        self.embedding: nn.Module = (
            _OneHot(self.num_classes)
            if embedding == "one_hot"
            else nn.Embedding(self.num_classes, width)
        )
        self.encoder = encoder
        self.decoder = decoder

        enc_latent = getattr(encoder, "latent_dim", None)
        dec_latent = getattr(decoder, "latent_dim", None)
        if dec_latent is not None and dec_latent <= width:
            raise ValueError(
                f"decoder.latent_dim must be latent_dim + embedding_dim (it sees z concatenated "
                f"with the label's {width}-dim embedding), got decoder.latent_dim={dec_latent}"
            )
        if enc_latent is not None and dec_latent is not None and dec_latent != enc_latent + width:
            raise ValueError(
                f"decoder.latent_dim must be encoder.latent_dim + embedding_dim = "
                f"{enc_latent} + {width} = {enc_latent + width} (z concatenated with the "
                f"label's embedding), got {dec_latent}"
            )
        if enc_latent is not None:
            latent = enc_latent
        elif dec_latent is not None:
            latent = dec_latent - width
        else:
            raise ValueError(
                "encoder or decoder must have an int attribute latent_dim; neither has one"
            )
        self.latent_dim = check_positive_int(latent, "latent_dim")

        # The shape of one example of x, where the encoder tells it.
        self.data_shape: tuple[int, ...] | None = None
        self.label_as_channels = False
        input_shape = getattr(encoder, "input_shape", None)
        input_dim = getattr(encoder, "input_dim", None)
        if isinstance(input_shape, Sequence) and len(input_shape) == 3:
            c, h, w = check_positive_ints(input_shape, "encoder.input_shape")
            if c <= width:
                raise ValueError(
                    f"encoder.input_shape must have channels = image channels + embedding_dim "
                    f"(the label is broadcast as {width} extra channels), got {tuple(input_shape)}"
                )
            self.label_as_channels = True
            self.data_shape = (c - width, h, w)
        elif input_dim is not None:
            if check_positive_int(input_dim, "encoder.input_dim") <= width:
                raise ValueError(
                    f"encoder.input_dim must be features + embedding_dim (x is concatenated "
                    f"with the label's {width}-dim embedding), got {input_dim}"
                )
            self.data_shape = (input_dim - width,)

    @classmethod
    def mlp(
        cls,
        input_dim: int = 784,
        hidden_dim: int | Sequence[int] = 400,
        latent_dim: int = 20,
        num_classes: int = 10,
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
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

        Returns:
            A new :class:`ConditionalVAE`.
        """
        num_classes = check_positive_int(num_classes, "num_classes")
        width = _embedding_width(embedding, num_classes, embedding_dim)
        input_dim = check_positive_int(input_dim, "input_dim")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        return cls(
            Encoder(input_dim + width, hidden_dim, latent_dim),
            Decoder(latent_dim + width, hidden_dim, input_dim),
            num_classes,
            embedding,
            embedding_dim,
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

        Returns:
            A new :class:`ConditionalVAE`.
        """
        num_classes = check_positive_int(num_classes, "num_classes")
        width = _embedding_width(embedding, num_classes, embedding_dim)
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
        )

    def _like_params(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            return p.device, p.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def _prepare(self, x: object, name: str = "x") -> Tensor:
        features = None if self.data_shape is None else math.prod(self.data_shape)
        return prepare_input(x, *self._like_params(), features, name)

    def _labels(self, y: object, batch: int, device: torch.device, name: str = "y") -> Tensor:
        y = check_tensor(y, name)
        if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            hint = " (for float labels use y.long())" if y.is_floating_point() else ""
            raise TypeError(
                f"{name} must be an integer tensor of class labels, got dtype {y.dtype}{hint}"
            )
        if y.ndim != 1 or y.shape[0] != batch:
            hint = (
                f"; for one-hot labels pass {name}.argmax(1)"
                if y.ndim == 2 and y.shape == (batch, self.num_classes)
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
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f"{name} must hold class labels in [0, num_classes) = "
                    f"[0, {self.num_classes}), got values in [{lo}, {hi}]"
                )
        return y.long()

    def embed(self, y: Tensor) -> Tensor:
        r"""The label's code :math:`e(y)`, ``(batch, embedding_dim)``, in the parameters' dtype.

        Args:
            y: integer labels ``(batch,)`` in ``[0, num_classes)``.
        """
        y = check_tensor(y, "y")
        if y.ndim != 1:
            raise ValueError(f"y must have shape (batch,), got shape {tuple(y.shape)}")
        return self._embed(self._labels(y, y.shape[0], self._like_params()[0]))

    def _embed(self, y: Tensor) -> Tensor:
        _, dtype = self._like_params()
        out: Tensor = self.embedding(y)
        return out.to(dtype)

    def _encode_prepared(self, x: Tensor, e: Tensor) -> GaussianParams:
        if self.label_as_channels:
            assert self.data_shape is not None
            image = x.reshape(x.shape[0], *self.data_shape)
            planes = e[:, :, None, None].expand(-1, -1, *self.data_shape[1:])
            inputs = torch.cat([image, planes], dim=1)
        else:
            inputs = torch.cat([x.flatten(1), e], dim=1)
        return run_encoder(self.encoder, inputs, self.latent_dim)

    def _decode_logits_embedded(self, z: Tensor, e: Tensor) -> Tensor:
        inputs = torch.cat([z, e.expand(*z.shape[:-1], e.shape[-1])], dim=-1)
        flat = inputs.reshape(-1, inputs.shape[-1])
        logits = run_decoder(self.decoder, flat)
        return logits.reshape(*z.shape[:-1], *logits.shape[1:])

    def encode(self, x: Tensor, y: Tensor) -> GaussianParams:
        r"""The parameters ``(mean, log_var)`` of :math:`q_\phi(z \mid x, y)`.

        Args:
            x: ``(batch, ...)``, floating point, finite.
            y: integer labels ``(batch,)``.

        Returns:
            Mean and log-variance, each ``(batch, latent_dim)``.
        """
        x = self._prepare(x)
        y = self._labels(y, x.shape[0], x.device)
        q = self._encode_prepared(x, self._embed(y))
        check_posterior(q, q.mean, x)
        return q

    def posterior(self, x: Tensor, y: Tensor) -> Independent[Normal]:
        r""":math:`q_\phi(z \mid x, y)` as a ``torch.distributions`` object."""
        return self.encode(x, y).distribution()

    def prior(self) -> Independent[Normal]:
        r"""The prior :math:`p(z) = \mathcal{N}(0, I)` on the parameters' device and dtype."""
        device, dtype = self._like_params()
        return standard_normal(self.latent_dim, device=device, dtype=dtype)

    def decode_logits(self, z: Tensor, y: Tensor) -> Tensor:
        r"""Decoder logits for ``z`` given the labels ``y``.

        Args:
            z: ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.
            y: integer labels ``(batch,)``, shared by the ``k`` samples.

        Returns:
            ``(batch, *decoder output shape)``, with ``(k,)`` in front for 3-d ``z``.
        """
        z = check_floating(z, "z")
        if z.ndim not in (2, 3) or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (batch, {self.latent_dim}) or (k, batch, {self.latent_dim}),"
                f" got {tuple(z.shape)}"
            )
        y = self._labels(y, z.shape[-2], z.device)
        return self._decode_logits_embedded(z, self._embed(y))

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        r"""Decoded values in [0, 1], :math:`\sigma(\text{logits})`; see :meth:`decode_logits`."""
        return torch.sigmoid(self.decode_logits(z, y))

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        r"""Encode with the label, sample :math:`z` by reparameterization, decode with the label.

        Args:
            x: ``(batch, ...)``: flat ``(batch, 784)`` or images ``(batch, 1, 28, 28)``.
            y: integer labels ``(batch,)`` in ``[0, num_classes)``.
            n_samples: ``None`` for one :math:`z` per example; ``k`` for ``k`` samples
                stacked in a new leading dimension.
            generator: optional random generator for :math:`\varepsilon`.

        Returns:
            A :class:`~torchvae.VAEOutput`; ``logits`` have ``x``'s shape (with ``(k,)`` in
            front when ``n_samples=k``).

        Raises:
            TypeError: ``x`` is not floating point or ``y`` is not an integer tensor.
            ValueError: bad shapes, labels outside ``[0, num_classes)``, or a device mismatch.
        """
        x = self._prepare(x)
        y = self._labels(y, x.shape[0], x.device)
        if n_samples is not None:
            check_positive_int(n_samples, "n_samples")
        check_generator(generator, x.device)
        e = self._embed(y)
        q = self._encode_prepared(x, e)
        z = q.rsample(n_samples, generator=generator)
        check_posterior(q, z, x)
        logits = self._decode_logits_embedded(z, e)
        return make_output(q, z, logits, x)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor, sample: bool = False) -> Tensor:
        r"""Reconstructions in [0, 1] with ``x``'s shape.

        Decoding :math:`\mu_\phi(x, y)` with another label instead (``decode(encode(x,
        y).mean, y_new)``) transfers the style of ``x`` to the class ``y_new``.

        Args:
            x: ``(batch, ...)``.
            y: integer labels ``(batch,)``.
            sample: decode a sample of :math:`q_\phi(z \mid x, y)` instead of its mean.
        """
        x = self._prepare(x)
        e = self._embed(self._labels(y, x.shape[0], x.device))
        q = self._encode_prepared(x, e)
        z = q.rsample() if sample else q.mean
        check_posterior(q, z, x)
        return torch.sigmoid(self._decode_logits_embedded(z, e)).reshape(x.shape)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: int | Sequence[int] | Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Draw ``n`` examples of the classes ``y``: :math:`z \sim \mathcal{N}(0, t^2 I)`.

        Args:
            n: how many.
            y: one class for all (an ``int``), or ``n`` labels (a sequence of ints or an
                integer tensor of shape ``(n,)``).
            generator: optional random generator on the parameters' device.
            temperature: scale :math:`t` of the prior's standard deviation.

        Returns:
            ``(n, *decoder output shape)``, values in [0, 1].

        Raises:
            TypeError: ``y`` is not an int, a sequence of ints or an integer tensor.
            ValueError: a label outside ``[0, num_classes)``, or ``n`` labels not given.
        """
        n = check_positive_int(n, "n")
        temperature = check_real(temperature, "temperature")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite float >= 0, got {temperature}")
        device, dtype = self._like_params()
        check_generator(generator, device)
        if isinstance(y, bool):
            raise TypeError(f"y must be an int class label or a tensor of them, got {y!r}")
        if isinstance(y, int):
            labels = torch.full((n,), y, dtype=torch.long, device=device)
        elif isinstance(y, Tensor):
            if y.device.type == "meta" and device.type != "meta":
                raise ValueError("y is a meta tensor, which holds no labels")
            labels = y.to(device) if y.ndim else y.to(device).expand(n)
        elif isinstance(y, Sequence) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in y
        ):
            labels = torch.tensor(list(y), dtype=torch.long, device=device)
        else:
            raise TypeError(
                f"y must be an int class label, a sequence of ints or an integer tensor, "
                f"got {type(y).__name__}"
            )
        labels = self._labels(labels, n, device)
        z = torch.randn(n, self.latent_dim, device=device, dtype=dtype, generator=generator)
        return torch.sigmoid(self._decode_logits_embedded(z * temperature, self._embed(labels)))

    @torch.no_grad()
    def interpolate(
        self,
        x1: Tensor,
        x2: Tensor,
        y1: Tensor,
        y2: Tensor | None = None,
        steps: int = 10,
    ) -> Tensor:
        r"""Decode points on the line between the posterior means of ``(x1, y1)`` and ``(x2, y2)``.

        .. math::
            z_t = (1 - t)\,\mu(x_1, y_1) + t\,\mu(x_2, y_2),\qquad
            e_t = (1 - t)\,e(y_1) + t\,e(y_2)

        for ``steps`` values of :math:`t` from 0 to 1; :math:`z_t` is decoded with the
        code :math:`e_t` (with ``y2=None`` the label stays ``y1`` throughout).

        Args:
            x1: ``(batch, ...)``.
            x2: the same shape as ``x1``.
            y1: integer labels ``(batch,)`` of ``x1``.
            y2: labels of ``x2``; default ``y1``.
            steps: number of points, >= 2.

        Returns:
            ``(steps, *x1.shape)``, values in [0, 1].
        """
        steps, x1, x2 = prepare_endpoints(self._prepare, x1, x2, steps)
        e1 = self._embed(self._labels(y1, x1.shape[0], x1.device, "y1"))
        e2 = e1 if y2 is None else self._embed(self._labels(y2, x2.shape[0], x2.device, "y2"))
        q1, q2 = self._encode_prepared(x1, e1), self._encode_prepared(x2, e2)
        check_posterior(q1, q1.mean, x1, "x1")
        check_posterior(q2, q2.mean, x2, "x2")
        m1, m2 = q1.mean, q2.mean
        t = torch.linspace(0, 1, steps, device=m1.device, dtype=m1.dtype).view(-1, 1, 1)
        z = (1 - t) * m1 + t * m2
        e = (1 - t) * e1 + t * e2
        logits = self._decode_logits_embedded(z, e)
        return torch.sigmoid(logits).reshape(steps, *x1.shape)

    def extra_repr(self) -> str:
        return (
            f"latent_dim={self.latent_dim}, num_classes={self.num_classes}, "
            f"embedding={self.embedding_kind!r}, embedding_dim={self.embedding_dim}"
        )
