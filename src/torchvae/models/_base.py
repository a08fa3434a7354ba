"""The wiring of a :class:`~torchvae.VAE`: its parts, their sizes, and the checked calls
to its networks that every method of the model goes through."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._validation import (
    check_finite,
    check_floating,
    check_positive_int,
    check_tensor,
)
from ..gaussian import GaussianParams
from ..likelihoods import Likelihood, check_likelihood
from ..posteriors import DiagonalGaussian, Posterior
from ..priors import Prior, StandardNormal
from ._inputs import (
    data_shape_of,
    decoder_features,
    latent_dim_of,
    prepare_input,
    run_decoder,
    run_encoder,
)
from ._labels import (
    EmbeddingKind,
    check_labels,
    embedding_width,
    join_condition,
    make_embedding,
)

__all__ = ["VAEBase"]


class VAEBase(nn.Module):
    """A VAE's parts and plumbing; see :class:`~torchvae.VAE` for the arguments."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        likelihood: Likelihood | None = None,
        prior: Prior | None = None,
        posterior: Posterior | None = None,
        num_classes: int | None = None,
        embedding: EmbeddingKind = "one_hot",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        self.num_classes = (
            None if num_classes is None else check_positive_int(num_classes, "num_classes")
        )
        self.embedding_kind: EmbeddingKind = embedding
        width = 0
        if self.num_classes is not None:
            width = embedding_width(embedding, self.num_classes, embedding_dim)
            self.embedding: nn.Module | None = make_embedding(embedding, self.num_classes, width)
        elif embedding_dim is not None:
            raise ValueError("embedding_dim is for a conditional model: pass num_classes too")
        else:
            self.embedding = None
        self.embedding_dim = width
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = latent_dim_of(encoder, decoder, width)
        self.data_shape, self.label_as_channels = data_shape_of(encoder, width)

        self.likelihood = check_likelihood(likelihood)
        for name, value, kind in (("prior", prior, Prior), ("posterior", posterior, Posterior)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(
                    f"{name} must be a torchvae {kind.__name__} (see torchvae.{name}s), "
                    f"got {type(value).__name__}"
                )
        self.posterior_head: Posterior = DiagonalGaussian() if posterior is None else posterior
        self.posterior_head.bind(self.latent_dim)
        self._check_sizes(decoder)
        # A likelihood whose parameters are not one per feature (a mixture per pixel): the
        # decoder's output is laid out as it asks, and x scored in the data's shape.
        layout = None if self.data_shape is None else self.likelihood.params_shape(self.data_shape)
        self._layout = None if layout is None or tuple(layout) == self.data_shape else tuple(layout)
        self.prior: Prior = StandardNormal() if prior is None else prior
        self.prior.bind(self)
        like = next(iter([*encoder.parameters(), *decoder.parameters()]), None)
        if like is not None:
            for part in (self.likelihood, self.posterior_head, self.prior):
                part.to(like)

    def _check_sizes(self, decoder: nn.Module) -> None:
        features = decoder_features(decoder)
        if self.data_shape is None or features is None:
            return
        want = math.prod(self.likelihood.params_shape(self.data_shape))
        if features != want:
            raise ValueError(
                f"decoder gives {features} features per example but the encoder takes "
                f"examples of shape {self.data_shape}, for which "
                f"{type(self.likelihood).__name__} needs {want}; size the decoder's output "
                f"like the encoder's input"
            )

    @property
    def data_range(self) -> tuple[float, float] | None:
        """The interval the data lie in (the likelihood's), or ``None`` for unbounded data."""
        return self.likelihood.data_range

    @property
    def is_conditional(self) -> bool:
        """Whether the model takes class labels (built with ``num_classes``)."""
        return self.num_classes is not None

    # --- checks and plumbing --------------------------------------------------------------

    def _like_params(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            return p.device, p.dtype
        like = self.prior._like
        return like.device, like.dtype

    def _prepare(self, x: object, name: str = "x") -> Tensor:
        features = None if self.data_shape is None else math.prod(self.data_shape)
        return prepare_input(x, *self._like_params(), features, name)

    def _labels(
        self, y: object, batch: int, device: torch.device, name: str = "y"
    ) -> Tensor | None:
        if self.num_classes is None:
            if y is not None:
                raise ValueError(
                    f"{name} was given but the model is not conditional (build it with "
                    f"num_classes=); did you mean n_samples=?"
                )
            return None
        if y is None:
            raise ValueError(
                f"the model is conditional (num_classes={self.num_classes}): give the class "
                f"labels {name} of shape (batch,)"
            )
        return check_labels(y, batch, device, self.num_classes, name)

    def embed(self, y: Tensor) -> Tensor:
        r"""The label's code :math:`e(y)`, ``(batch, embedding_dim)``, in the parameters' dtype.

        Args:
            y: integer labels ``(batch,)`` in ``[0, num_classes)``.
        """
        y = check_tensor(y, "y")
        if y.ndim != 1:
            raise ValueError(f"y must have shape (batch,), got shape {tuple(y.shape)}")
        e = self._embed(self._labels(y, y.shape[0], self._like_params()[0]))
        if e is None:
            raise ValueError("the model is not conditional: it has no label embedding")
        return e

    def _embed(self, y: Tensor | None) -> Tensor | None:
        if y is None or self.embedding is None:
            return None
        out: Tensor = self.embedding(y)
        return out.to(self._like_params()[1])

    def _encode(self, x: Tensor, e: Tensor | None) -> GaussianParams:
        image = self.data_shape if self.label_as_channels else None
        inputs = x if e is None else join_condition(x, e, image)
        return run_encoder(self.encoder, inputs, self.latent_dim)

    def encode_trusted(self, x: Tensor, y: Tensor | None = None) -> GaussianParams:
        """:meth:`encode` for inputs the caller made (e.g. a VampPrior's), without checks."""
        return self._encode(x, self._embed(y))

    def _decode(self, z: Tensor, e: Tensor | None) -> Tensor:
        lead = z.shape[:-1]
        if e is not None:
            z = torch.cat([z, e.expand(*lead, e.shape[-1])], dim=-1)
        flat = z.reshape(-1, z.shape[-1]) if z.ndim != 2 else z
        logits = run_decoder(self.decoder, flat)
        if self._layout is not None:
            return logits.reshape(*lead, *self._layout)
        return logits if z.ndim == 2 else logits.reshape(*lead, *logits.shape[1:])

    def _scored_shapes(self, x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shape ``x``'s examples are scored in, and the decoder output's layout."""
        if self._layout is not None:
            assert self.data_shape is not None
            return self.data_shape, self._layout
        event = tuple(x.shape[1:])
        if self.data_shape is not None:
            return event, event
        return event, tuple(self.likelihood.params_shape(event))

    def _sampler_latent(
        self,
        sampler: object,
        n: int,
        generator: torch.Generator | None,
        temperature: float,
        dim: int,
    ) -> Tensor:
        """``sampler.sample(n, generator, temperature)``, checked to be ``n`` latents of ``dim``."""
        draw = getattr(sampler, "sample", None)
        if not callable(draw):
            raise TypeError(
                f"sampler must have a method sample(n, generator=, temperature=) (e.g. a "
                f"torchvae.GaussianMixtureSampler), got {type(sampler).__name__}"
            )
        z = check_floating(draw(n, generator, temperature), "the sampler's z")
        if tuple(z.shape) != (n, dim):
            raise ValueError(
                f"the sampler gave z of shape {tuple(z.shape)}, not (n, latent_dim) = ({n}, {dim})"
            )
        device, dtype = self._like_params()
        if z.device != device:
            raise ValueError(f"the sampler gave z on {z.device}, the model is on {device}")
        return check_finite(z.to(dtype), "the sampler's z")

    def _check_latent(self, z: object, name: str = "z") -> Tensor:
        z = check_floating(z, name)
        if z.ndim < 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"{name} must have shape (batch, latent_dim) or (k, batch, latent_dim) with "
                f"latent_dim = {self.latent_dim}, got shape {tuple(z.shape)}"
            )
        device, dtype = self._like_params()
        if z.device != device:
            raise ValueError(
                f"{name} is on {z.device} but the model's parameters are on {device}; "
                f"move one of them (e.g. {name}.to({str(device)!r}))"
            )
        check_finite(z, name)
        return z if z.dtype == dtype else check_finite(z.to(dtype), f"{name} (cast to {dtype})")

    def _output(self, logits: Tensor, draw: bool, generator: torch.Generator | None) -> Tensor:
        if draw:
            return self.likelihood.sample(logits, generator)
        return self.likelihood.mean(logits)
