r"""The variational autoencoder as a probabilistic model: it owns :math:`p(z)`,
:math:`q_\phi(z \mid x)` and :math:`p_\theta(x \mid z)`.

.. math::
    p_\theta(x, z) = p(z)\, p_\theta(x \mid z), \qquad
    \log p_\theta(x) \geq \mathbb{E}_{q_\phi(z \mid x)}\!\left[\log p_\theta(x \mid z)\right]
    - \mathrm{KL}\!\left(q_\phi(z \mid x)\,\|\,p(z)\right).

A :class:`VAE` holds an encoder and a decoder (the networks) and three distribution
modules: the prior (``prior=``, default :class:`~torchvae.priors.StandardNormal`), the
posterior that the encoder's ``(mean, log_var)`` become (``posterior=``, default
:class:`~torchvae.posteriors.DiagonalGaussian`) and the likelihood that the decoder's output
parameterizes (``likelihood=``, default :class:`~torchvae.Bernoulli`). Every consumer —
the losses, :func:`~torchvae.log_likelihood`, the Trainer, the diagnostics, the callbacks,
the command line and the model files — reads them from the model. Given ``num_classes``,
the same model is conditioned on a class label :math:`y` (Sohn et al., 2015):
:math:`q_\phi(z \mid x, y)`, :math:`p(z \mid y)`, :math:`p_\theta(x \mid z, y)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from typing_extensions import Self

from ._inputs import check_posterior, prepare_endpoints, prepare_input, run_decoder, run_encoder
from ._labels import (
    EmbeddingKind,
    check_labels,
    embedding_width,
    join_condition,
    label_tensor,
    make_embedding,
)
from ._validation import (
    check_finite,
    check_floating,
    check_generator,
    check_positive_int,
    check_positive_ints,
    check_tensor,
)
from .gaussian import GaussianParams
from .likelihoods import Likelihood, check_likelihood
from .posteriors import DiagonalGaussian, Posterior
from .priors import Prior, StandardNormal, check_temperature

if TYPE_CHECKING:
    from .samplers import LatentSampler

__all__ = ["VAE", "VAEOutput"]


class VAEOutput(NamedTuple):
    r"""What :meth:`VAE.forward` returns: the samples and the terms of the bound.

    A :class:`VAE` fills every field; a user-written model may return only the first four
    (the losses then score ``logits`` with their own likelihood against
    :math:`\mathcal{N}(0, I)`).

    Attributes:
        logits: decoder output (the likelihood's parameters), ``x``'s shape (with
            ``n_samples=k``: ``(k, *x.shape)``).
        mean: the encoder's :math:`\mu_\phi(x)`, ``(batch, latent_dim)``.
        log_var: the encoder's :math:`\log\sigma^2_\phi(x)`, ``(batch, latent_dim)``.
        z: the reparameterized sample(s), ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.
        log_px_z: :math:`\log p_\theta(x \mid z)` per sample, ``(batch,)`` or ``(k, batch)``.
        kl: the KL term per example, ``(batch,)``: closed form, or the Monte Carlo estimate
            :math:`\log q(z \mid x) - \log p(z)` averaged over the samples.
        kl_per_dim: the closed-form KL per example and latent dimension,
            ``(batch, latent_dim)``, where the posterior and prior factorize; else ``None``.
        log_qz: :math:`\log q_\phi(z \mid x)` at the samples, shape of ``log_px_z``.
        log_pz: :math:`\log p(z)` at the samples; ``None`` when a closed-form KL made it
            unnecessary (one sample per example).
        likelihood: the model's :math:`p_\theta(x \mid z)`.
        kl_exact: whether ``kl`` is in closed form (otherwise a Monte Carlo estimate).
    """

    logits: Tensor
    mean: Tensor
    log_var: Tensor
    z: Tensor
    log_px_z: Tensor | None = None
    kl: Tensor | None = None
    kl_per_dim: Tensor | None = None
    log_qz: Tensor | None = None
    log_pz: Tensor | None = None
    likelihood: Likelihood | None = None
    kl_exact: bool = True

    @property
    def x_hat(self) -> Tensor:
        r"""The reconstruction, the mean of :math:`p_\theta(x \mid z)`.

        For the Bernoulli likelihood it is :math:`\sigma(\text{logits})`, in [0, 1].
        """
        if self.likelihood is None:
            return torch.sigmoid(self.logits)
        return self.likelihood.mean(self.logits)

    @property
    def posterior(self) -> GaussianParams:
        r"""The encoder's parameters of :math:`q_\phi(z \mid x)`."""
        return GaussianParams(self.mean, self.log_var)


def _latent_dim(encoder: nn.Module, decoder: nn.Module, width: int) -> int:
    enc, dec = getattr(encoder, "latent_dim", None), getattr(decoder, "latent_dim", None)
    if width:
        if dec is not None and dec <= width:
            raise ValueError(
                f"decoder.latent_dim must be latent_dim + embedding_dim (it sees z concatenated "
                f"with the label's {width}-dim embedding), got decoder.latent_dim={dec}"
            )
        if enc is not None and dec is not None and dec != enc + width:
            raise ValueError(
                f"decoder.latent_dim must be encoder.latent_dim + embedding_dim = "
                f"{enc} + {width} = {enc + width} (z concatenated with the label's "
                f"embedding), got {dec}"
            )
    elif enc is not None and dec is not None and enc != dec:
        raise ValueError(f"encoder.latent_dim ({enc}) and decoder.latent_dim ({dec}) differ")
    if enc is not None:
        return check_positive_int(enc, "latent_dim")
    if dec is not None:
        return check_positive_int(dec - width, "latent_dim")
    raise ValueError("encoder or decoder must have an int attribute latent_dim; neither has one")


def _data_shape(encoder: nn.Module, width: int) -> tuple[tuple[int, ...] | None, bool]:
    """The shape of one example of ``x`` where the encoder tells it; whether it is an image
    that takes the label as channels."""
    shape, dim = getattr(encoder, "input_shape", None), getattr(encoder, "input_dim", None)
    if isinstance(shape, Sequence) and not isinstance(shape, str):
        sizes = check_positive_ints(shape, "encoder.input_shape")
        if len(sizes) == 3 and width:
            if sizes[0] <= width:
                raise ValueError(
                    f"encoder.input_shape must have channels = image channels + embedding_dim "
                    f"(the label is broadcast as {width} extra channels), got {tuple(shape)}"
                )
            return (sizes[0] - width, *sizes[1:]), True
        return sizes, False
    if isinstance(dim, int) and not isinstance(dim, bool):
        if check_positive_int(dim, "encoder.input_dim") <= width:
            raise ValueError(
                f"encoder.input_dim must be features + embedding_dim (x is concatenated "
                f"with the label's {width}-dim embedding), got {dim}"
            )
        return (dim - width,), False
    return None, False


def _decoder_features(decoder: nn.Module) -> int | None:
    shape, dim = getattr(decoder, "output_shape", None), getattr(decoder, "output_dim", None)
    if isinstance(shape, Sequence) and shape and all(isinstance(s, int) for s in shape):
        return math.prod(shape)
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


class VAE(nn.Module):
    r"""A variational autoencoder: encoder, decoder, and the distributions they parameterize.

    The forward pass encodes :math:`x` to :math:`q_\phi(z \mid x)`, draws :math:`z` by
    reparameterization (for the diagonal Gaussian :math:`z = \mu + \sigma \odot
    \varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`, so that gradients reach
    :math:`\phi`), decodes it, and returns the terms of the ELBO: :math:`\log p_\theta(x
    \mid z)` and the KL, in closed form where the prior and the posterior have one
    (:class:`~torchvae.priors.StandardNormal` with the diagonal Gaussian), otherwise the
    Monte Carlo estimate :math:`\log q_\phi(z \mid x) - \log p(z)` on the same samples.

    **The interface.** ``encoder(x)`` returns ``(mean, log_var)``, each
    ``(batch, latent_dim)``. ``decoder.logits(z)`` returns unconstrained outputs, the
    likelihood's parameters (one per feature of ``x`` for the built-in likelihoods); a
    decoder with no ``logits`` method may instead return values in [0, 1] from
    ``decoder(z)`` (the VAE then takes their logit, clamped to :math:`[10^{-6}, 1 -
    10^{-6}]`, which is less stable). One of the two must have an int attribute
    ``latent_dim``. Where the encoder has ``input_dim``/``input_shape`` and the decoder
    ``output_dim``/``output_shape``, their sizes are checked against each other here.

    Args:
        encoder: the inference network.
        decoder: the generative network.
        likelihood: :math:`p_\theta(x \mid z)`; default :class:`~torchvae.Bernoulli`.
        prior: :math:`p(z)`; default :class:`~torchvae.priors.StandardNormal`.
        posterior: the family of :math:`q_\phi(z \mid x)`; default
            :class:`~torchvae.posteriors.DiagonalGaussian`.
        num_classes: condition on a class label in ``[0, num_classes)``; the model is
            then called as ``model(x, y)``. The decoder sees :math:`[z, e(y)]`, the encoder
            :math:`[\operatorname{flatten}(x), e(y)]` (or, for an encoder with a 3-tuple
            ``input_shape``, the image with :math:`e(y)` as extra channels); see
            :class:`~torchvae.ConditionalVAE` for constructors that size the networks.
        embedding: ``"one_hot"`` (:math:`e(y)` is the one-hot vector) or ``"learned"``
            (an ``nn.Embedding`` trained with the model).
        embedding_dim: width of a learned :math:`e(y)` (default ``num_classes``).

    Raises:
        TypeError: a part is not a module of the right kind.
        ValueError: the parts' sizes do not fit together (the message names them).

    Example:
        >>> from torchvae import Encoder, Decoder, Gaussian
        >>> from torchvae.priors import MixturePrior
        >>> model = VAE(Encoder(784, 400, 20), Decoder(20, 400, 784),
        ...             likelihood=Gaussian(scale=0.1), prior=MixturePrior(10))
        >>> out = model(torch.rand(8, 1, 28, 28))
        >>> out.x_hat.shape, out.z.shape, out.kl_exact
        (torch.Size([8, 1, 28, 28]), torch.Size([8, 20]), False)
        >>> model.sample(4).shape
        torch.Size([4, 784])
    """

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
        self.latent_dim = _latent_dim(encoder, decoder, width)
        self.data_shape, self.label_as_channels = _data_shape(encoder, width)

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
        self.prior: Prior = StandardNormal() if prior is None else prior
        self.prior.bind(self)
        like = next(iter([*encoder.parameters(), *decoder.parameters()]), None)
        if like is not None:
            for part in (self.likelihood, self.posterior_head, self.prior):
                part.to(like)

    def _check_sizes(self, decoder: nn.Module) -> None:
        features = _decoder_features(decoder)
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
        return logits if z.ndim == 2 else logits.reshape(*lead, *logits.shape[1:])

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

    # --- the distributions ----------------------------------------------------------------

    def encode(self, x: Tensor, y: Tensor | None = None) -> GaussianParams:
        r"""The encoder's parameters ``(mean, log_var)`` of :math:`q_\phi(z \mid x)`.

        Args:
            x: ``(batch, ...)``, floating point, finite.
            y: labels ``(batch,)`` for a conditional model.
        """
        x = self._prepare(x)
        q = self._encode(x, self._embed(self._labels(y, x.shape[0], x.device)))
        check_posterior(q, q.mean, x)
        return q

    def posterior(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        r""":math:`q_\phi(z \mid x)` as a ``torch.distributions`` object."""
        q: Distribution = self.posterior_head(self.encode(x, y))
        return q

    def decode_logits(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The decoder's output (the likelihood's parameters) for ``z``.

        Args:
            z: latent codes ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.
            y: labels ``(batch,)`` for a conditional model, shared by the ``k`` samples.

        Returns:
            ``(*z.shape[:-1], *decoder output shape)``.

        Raises:
            TypeError: ``z`` is not a floating-point tensor.
            ValueError: ``z`` has the wrong shape, device, or NaN/inf values.
        """
        z = self._check_latent(z)
        return self._decode(z, self._embed(self._labels(y, z.shape[-2], z.device)))

    def decode(
        self,
        z: Tensor,
        y: Tensor | None = None,
        draw: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""The mean of :math:`p_\theta(x \mid z)` (a draw with ``draw=True``), decoder's shape.

        For the Bernoulli likelihood the mean is :math:`\sigma(\text{logits})`, in [0, 1].
        """
        return self._output(self.decode_logits(z, y), draw, generator)

    def forward(
        self,
        x: Tensor,
        y: Tensor | None = None,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        r"""Encode, sample :math:`z` by reparameterization, decode, and score.

        Args:
            x: ``(batch, ...)``: e.g. flat ``(batch, 784)`` or images ``(batch, 1, 28, 28)``;
                valid data for the likelihood (e.g. in [0, 1] for a Bernoulli).
            y: labels ``(batch,)`` for a conditional model.
            n_samples: ``None`` for one :math:`z` per example; ``k`` for ``k`` samples
                (importance-weighted objectives), stacked in a new leading dimension.
            generator: optional random generator for the samples.

        Returns:
            A :class:`VAEOutput` with the terms of the bound.
        """
        x = self._prepare(x)
        labels = self._labels(y, x.shape[0], x.device)
        if n_samples is not None:
            check_positive_int(n_samples, "n_samples")
        check_generator(generator, x.device)
        e = self._embed(labels)
        params = self._encode(x, e)
        z, log_qz = self.posterior_head.rsample_and_log_prob(params, n_samples, generator)
        check_posterior(params, z, x)
        self.likelihood.validate_target(x)
        closed = self.prior.kl_closed_form(self.posterior_head, params, labels)
        logits = self._decode(z, e)
        lead = z.shape[:-1]
        features = logits.shape[len(lead) :].numel()
        if features != x.shape[1:].numel():
            raise ValueError(
                f"decoder output has {features} features per example but x has "
                f"{x.shape[1:].numel()} (x shape {tuple(x.shape)}, decoder output shape "
                f"{tuple(logits.shape)})"
            )
        logits = logits.reshape(*lead[:-1], *x.shape)
        log_px_z = self.likelihood._log_prob(logits, x.to(logits.dtype))
        log_pz = None
        if closed is None or n_samples is not None:
            log_pz = self.prior.log_prob(z, labels)
        if closed is None:
            assert log_pz is not None
            samples = log_qz - log_pz
            kl, per_dim = (samples if n_samples is None else samples.mean(0)), None
        else:
            per_dim = closed if closed.ndim == 2 else None
            kl = closed.sum(-1) if closed.ndim == 2 else closed
        return VAEOutput(
            logits,
            params.mean,
            params.log_var,
            z,
            log_px_z,
            kl,
            per_dim,
            log_qz,
            log_pz,
            self.likelihood,
            closed is not None,
        )

    # --- generation -----------------------------------------------------------------------

    @torch.no_grad()
    def _reconstruct(
        self, x: object, y: object, sample: bool, generator: torch.Generator | None, draw: bool
    ) -> Tensor:
        x = self._prepare(x)
        check_generator(generator, x.device)
        e = self._embed(self._labels(y, x.shape[0], x.device))
        params = self._encode(x, e)
        z = (
            self.posterior_head.rsample_and_log_prob(params, None, generator)[0]
            if sample
            else self.posterior_head.location(params)
        )
        check_posterior(params, z, x)
        return self._output(self._decode(z, e), draw, generator).reshape(x.shape)

    def reconstruct(
        self,
        x: Tensor,
        sample: bool = False,
        generator: torch.Generator | None = None,
        *,
        y: Tensor | None = None,
        draw: bool = False,
    ) -> Tensor:
        r"""Reconstructions with ``x``'s shape: the mean of :math:`p_\theta(x \mid z)`.

        Args:
            x: ``(batch, ...)``.
            sample: decode a sample of :math:`q_\phi(z \mid x)` instead of its location
                (the mean for a diagonal Gaussian; deterministic, the default).
            generator: optional random generator for the samples.
            y: labels for a conditional model.
            draw: return a draw from :math:`p_\theta(x \mid z)` instead of its mean.
        """
        return self._reconstruct(x, y, sample, generator, draw)

    @torch.no_grad()
    def _sample(
        self,
        n: int,
        y: object,
        generator: torch.Generator | None,
        temperature: float,
        draw: bool,
        sampler: LatentSampler | None = None,
    ) -> Tensor:
        n = check_positive_int(n, "n")
        temperature = check_temperature(temperature)
        device, _ = self._like_params()
        check_generator(generator, device)
        labels = None
        if self.num_classes is not None:
            if y is None:
                raise ValueError(
                    f"the model is conditional: give the classes to draw, y= an int or {n} labels"
                )
            labels = self._labels(label_tensor(y, n, device), n, device)
        elif y is not None:
            raise ValueError("y was given but the model is not conditional")
        if sampler is None:
            z = self.prior.sample(n, labels, temperature, generator)
        else:
            if not callable(getattr(sampler, "sample", None)):
                raise TypeError(
                    f"sampler must have a method sample(n, generator=, temperature=) (e.g. a "
                    f"torchvae.GaussianMixtureSampler), got {type(sampler).__name__}"
                )
            z = self._check_latent(sampler.sample(n, generator, temperature), "sampler's z")
            if tuple(z.shape) != (n, self.latent_dim):
                raise ValueError(
                    f"the sampler gave z of shape {tuple(z.shape)}, not (n, latent_dim) = "
                    f"({n}, {self.latent_dim})"
                )
        return self._output(self._decode(z, self._embed(labels)), draw, generator)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        *,
        y: int | Sequence[int] | Tensor | None = None,
        draw: bool = False,
        sampler: LatentSampler | None = None,
    ) -> Tensor:
        r"""Draw ``n`` new examples: the mean of :math:`p_\theta(x \mid z)` for :math:`z \sim p(z)`.

        Args:
            n: how many.
            generator: optional random generator on the parameters' device.
            temperature: :math:`t \geq 0`, the spread of the prior (for
                :math:`\mathcal{N}(0, I)`: :math:`z \sim \mathcal{N}(0, t^2 I)`).
            y: for a conditional model, one class for all (an ``int``) or ``n`` labels.
            draw: return a draw from :math:`p_\theta(x \mid z)` instead of its mean.
            sampler: draw :math:`z` from ``sampler.sample(n, generator, temperature)``
                instead of the prior, e.g. a :class:`~torchvae.GaussianMixtureSampler`
                fitted to the aggregate posterior (:func:`~torchvae.fit_gmm_sampler`;
                a sampler set as ``model.sampler`` is saved with the model).

        Returns:
            ``(n, *decoder output shape)``, e.g. ``(n, 784)`` for the MLP decoder and
            ``(n, 1, 28, 28)`` for the convolutional one.
        """
        return self._sample(n, y, generator, temperature, draw, sampler)

    @torch.no_grad()
    def _interpolate(self, x1: object, x2: object, y1: object, y2: object, steps: object) -> Tensor:
        steps, a, b = prepare_endpoints(self._prepare, x1, x2, steps)
        e1 = self._embed(self._labels(y1, a.shape[0], a.device, "y1"))
        e2 = e1 if y2 is None else self._embed(self._labels(y2, b.shape[0], b.device, "y2"))
        p1, p2 = self._encode(a, e1), self._encode(b, e2)
        m1, m2 = self.posterior_head.location(p1), self.posterior_head.location(p2)
        check_posterior(p1, m1, a, "x1")
        check_posterior(p2, m2, b, "x2")
        t = torch.linspace(0, 1, steps, device=m1.device, dtype=m1.dtype).view(-1, 1, 1)
        z = (1 - t) * m1 + t * m2
        e = None if e1 is None or e2 is None else (1 - t) * e1 + t * e2
        return self.likelihood.mean(self._decode(z, e)).reshape(steps, *a.shape)

    def interpolate(
        self,
        x1: Tensor,
        x2: Tensor,
        steps: int = 10,
        *,
        y1: Tensor | None = None,
        y2: Tensor | None = None,
    ) -> Tensor:
        r"""Decode points on the line between the posterior locations of ``x1`` and ``x2``.

        :math:`z_t = (1 - t)\,\mu(x_1) + t\,\mu(x_2)` for ``steps`` values of :math:`t` from
        0 to 1 (with labels, their codes are interpolated alike; ``y2`` defaults to ``y1``).

        Args:
            x1: ``(batch, ...)``.
            x2: the same shape as ``x1``.
            steps: number of points, >= 2.
            y1: labels of ``x1`` for a conditional model.
            y2: labels of ``x2``.

        Returns:
            ``(steps, *x1.shape)``: the means of :math:`p_\theta(x \mid z_t)`.
        """
        return self._interpolate(x1, x2, y1, y2, steps)

    # --- files ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the architecture (as JSON) and weights to ``path``, atomically.

        See :func:`torchvae.serialization.save_model`, which this calls.
        """
        from .serialization import save_model

        save_model(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None
    ) -> Self:
        """Rebuild a model written by :meth:`save`; no code from the file runs.

        See :func:`torchvae.serialization.load_model`, which this calls.
        """
        from .serialization import load_model

        return load_model(path, map_location, expected_type=cls)

    def extra_repr(self) -> str:
        parts: list[str] = [f"latent_dim={self.latent_dim}"]
        if self.num_classes is not None:
            parts += [
                f"num_classes={self.num_classes}",
                f"embedding={self.embedding_kind!r}",
                f"embedding_dim={self.embedding_dim}",
            ]
        return ", ".join(parts)
