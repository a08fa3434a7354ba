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
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor
from torch.distributions import Distribution
from typing_extensions import Self

from .._validation import (
    check_generator,
    check_positive_int,
)
from ..gaussian import GaussianParams
from ..io.registry import Config, register_serializable
from ..io.serialization import load_model, save_model
from ..priors._base import check_temperature
from ._base import VAEBase
from ._hub import HubMethods
from ._inputs import (
    check_posterior,
    prepare_endpoints,
)
from ._labels import (
    label_tensor,
)
from .output import VAEOutput

if TYPE_CHECKING:
    from ..samplers.gmm import LatentSampler

__all__ = ["VAE", "VAEOutput"]


class VAE(HubMethods, VAEBase):
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
        event, layout = self._scored_shapes(x)
        features = logits.shape[len(lead) :].numel()
        if features != math.prod(layout):
            needs = (
                f"x has {x.shape[1:].numel()}"
                if layout == event
                else f"{type(self.likelihood).__name__} needs {math.prod(layout)} "
                f"({layout}) for examples of shape {event}"
            )
            raise ValueError(
                f"decoder output has {features} features per example but {needs} (x shape "
                f"{tuple(x.shape)}, decoder output shape {tuple(logits.shape)})"
            )
        logits = logits.reshape(*lead, *layout)
        target = x.reshape(x.shape[0], *event)
        log_px_z = self.likelihood._log_prob(logits, target.to(logits.dtype))
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
            z = self._sampler_latent(sampler, n, generator, temperature, self.latent_dim)
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

        See :func:`torchvae.io.serialization.save_model`, which this calls.
        """
        save_model(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None
    ) -> Self:
        """Rebuild a model written by :meth:`save`; no code from the file runs.

        See :func:`torchvae.io.serialization.load_model`, which this calls.
        """
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


_V = TypeVar("_V", bound=VAE)


def _vae_config(m: VAE) -> Config:
    config: Config = {
        "encoder": m.encoder,
        "decoder": m.decoder,
        "likelihood": m.likelihood,
        "prior": m.prior,
        "posterior": m.posterior_head,
    }
    if m.num_classes is not None:
        config.update(
            num_classes=m.num_classes, embedding=m.embedding_kind, embedding_dim=m.embedding_dim
        )
    sampler = getattr(m, "sampler", None)
    if sampler is not None:  # an ex-post sampler set as model.sampler is saved with it
        config["sampler"] = sampler
    return config


def _with_sampler(model: _V, c: Config) -> _V:
    if c.get("sampler") is not None:
        model.sampler = c["sampler"]
    return model


def _parts(c: Config) -> dict[str, Any]:
    """The VAE's distribution modules; files from before they existed have none (defaults)."""
    return {key: c.get(key) for key in ("likelihood", "prior", "posterior")}


register_serializable(
    VAE,
    _vae_config,
    lambda c: _with_sampler(
        VAE(
            c["encoder"],
            c["decoder"],
            num_classes=c.get("num_classes"),
            embedding=c.get("embedding", "one_hot"),
            embedding_dim=c.get("embedding_dim"),
            **_parts(c),
        ),
        c,
    ),
)
