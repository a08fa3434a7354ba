r"""Hierarchical VAEs: :math:`L` stochastic layers with the Ladder VAE's top-down inference.

The generative model, layer 1 nearest the data and layer :math:`L` on top:

.. math::
    p_\theta(x, z_{1:L}) = p(z_L) \prod_{l=1}^{L-1} p_\theta(z_l \mid z_{l+1})\,
    p_\theta(x \mid z_1), \qquad
    p_\theta(z_l \mid z_{l+1}) = \mathcal{N}\!\left(\mu_{p,l}(z_{l+1}),
    \operatorname{diag}\sigma^2_{p,l}(z_{l+1})\right).

Inference (Sønderby et al., 2016): a deterministic bottom-up pass :math:`d_l = f_l(d_{l-1})`,
:math:`d_0 = x`, gives a Gaussian :math:`(\hat\mu_l, \hat\sigma^2_l)` per layer; then, top
down, the posterior of each layer merges it with the generative Gaussian by precision
weighting:

.. math::
    q_\phi(z_L \mid x) = \mathcal{N}(\hat\mu_L, \hat\sigma^2_L), \qquad
    q_\phi(z_l \mid z_{l+1}, x) = \mathcal{N}(\mu_{q,l}, \sigma^2_{q,l}),\quad
    \sigma^{-2}_{q,l} = \hat\sigma^{-2}_l + \sigma^{-2}_{p,l},\quad
    \mu_{q,l} = \sigma^2_{q,l}\left(\hat\mu_l \hat\sigma^{-2}_l
    + \mu_{p,l}\sigma^{-2}_{p,l}\right).

The bound's terms are joint over the layers: :math:`\log q = \sum_l \log q(z_l \mid
\cdot)`, :math:`\log p(z) = \log p(z_L) + \sum_{l<L} \log p(z_l \mid z_{l+1})`, and the KL
is :math:`\sum_l \mathrm{KL}(q(z_l \mid z_{l+1}, x) \,\|\, p(z_l \mid z_{l+1}))`, each in
closed form given the sampled layer above (a Monte Carlo estimate over those samples; the
top layer's against the prior in closed form where the prior has one). So the ELBO, the
IWAE bound and :func:`~torchvae.log_likelihood` (importance sampling over all layers) work
unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import torch
from torch import Tensor, nn
from typing_extensions import Self

from .._validation import check_generator, check_positive_int, check_positive_ints
from ..gaussian import GaussianParams
from ..io.registry import Config, register_serializable
from ..likelihoods import Likelihood, check_likelihood
from ..posteriors import DiagonalGaussian, Posterior
from ..priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior
from ..priors._base import check_temperature
from ._inputs import check_posterior, prepare_endpoints, run_decoder
from ._nn import Activation, leaky_relu
from .decoders import Decoder
from .encoders import Encoder
from .vae import VAE, VAEOutput

if TYPE_CHECKING:
    from torch.distributions import Distribution

if TYPE_CHECKING:
    from ..samplers.gmm import LatentSampler

__all__ = ["ActivationName", "HierarchicalVAE", "LatentLayer"]

ActivationName = Literal["tanh", "relu", "leaky_relu", "elu"]
"""The activations a :class:`HierarchicalVAE` can use (by name, so that it can be saved)."""

_ACTIVATIONS: dict[str, Activation] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": leaky_relu,
    "elu": nn.ELU,
}
_PRIORS = (StandardNormal, MixturePrior, VampPrior, FlowPrior)
_LOG_2PI = math.log(2.0 * math.pi)


class LatentLayer(NamedTuple):
    r"""One stochastic layer of a path through a :class:`HierarchicalVAE` (bottom first).

    Shapes are ``(*k, batch, d_l)`` for the samples and parameters and ``(*k, batch)`` for
    the log-densities, ``k`` the number of samples per example when one was asked for (the
    top layer's ``q`` has no ``k``: it depends on :math:`x` alone).

    Attributes:
        z: the sample (or the location, on a deterministic path) :math:`z_l`.
        q: :math:`q_\phi(z_l \mid z_{l+1}, x)` (the top layer: :math:`q_\phi(z_L \mid x)`).
        p: :math:`p_\theta(z_l \mid z_{l+1})`; ``None`` for the top layer, whose prior is
            the model's ``prior``.
        log_q: :math:`\log q(z_l \mid \cdot)` at ``z``.
        log_p: :math:`\log p(z_l \mid z_{l+1})` (the top layer: :math:`\log p(z_L)`).
        kl: the layer's KL per example: in closed form given the layer above, or the
            Monte Carlo estimate ``log_q - log_p`` where the prior has no closed form.
        kl_per_dim: the closed-form KL per dimension, or ``None`` where there is none.
    """

    z: Tensor
    q: GaussianParams
    p: GaussianParams | None
    log_q: Tensor
    log_p: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None


def _merge(up: GaussianParams, p: GaussianParams) -> GaussianParams:
    r"""Precision weighting: :math:`\sigma_q^{-2} = \hat\sigma^{-2} + \sigma_p^{-2}`."""
    log_var = -torch.logaddexp(-up.log_var, -p.log_var)
    # The weight of the bottom-up mean, sigma_up^-2 / (sigma_up^-2 + sigma_p^-2).
    weight = torch.sigmoid(p.log_var - up.log_var)
    return GaussianParams(p.mean + weight * (up.mean - p.mean), log_var)


def _gaussian_kl(q: GaussianParams, p: GaussianParams) -> Tensor:
    r"""The KL of two diagonal Gaussians, :math:`\mathrm{KL}(q \,\|\, p)`, per dimension."""
    ratio = q.log_var - p.log_var
    # expm1(r) - r >= 0 exactly; rounding near r = 0 could make it negative, hence the clamp.
    spread = (torch.expm1(ratio) - ratio).clamp_min(0.0)
    return 0.5 * (spread + (q.mean - p.mean).square() * torch.exp(-p.log_var))


def _draw(
    q: GaussianParams,
    n_samples: int | None,
    generator: torch.Generator | None,
    location: bool,
    noise: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """A reparameterized sample of ``q`` (or its mean) and its log-density."""
    if location:
        return q.mean, -0.5 * (q.log_var + _LOG_2PI).sum(-1)
    if noise is None:
        shape = q.mean.shape if n_samples is None else (n_samples, *q.mean.shape)
        kw: dict[str, Any] = {} if generator is None else {"generator": generator}
        noise = torch.randn(shape, dtype=q.mean.dtype, device=q.mean.device, **kw)
    z = q.mean + q.std * noise
    return z, -0.5 * (noise.square() + q.log_var + _LOG_2PI).sum(-1)


def _gaussian_head(block: Encoder, h: Tensor) -> tuple[Tensor, GaussianParams]:
    """A block's hidden layers, then its mean and log-variance heads."""
    h = block.hidden(h)
    return h, GaussianParams(block.mean(h), block.log_var(h))


class _TopLayer:
    """What the prior sees of the model when it is bound: the top stochastic layer."""

    num_classes = None

    def __init__(self, model: HierarchicalVAE) -> None:
        self._model = model
        self.latent_dim = model.latent_dims[-1]
        self.data_shape = model.data_shape
        self.likelihood = model.likelihood
        self.posterior_head = model.posterior_head
        self.data_range = model.likelihood.data_range

    def encode_trusted(self, x: Tensor, y: Tensor | None = None) -> GaussianParams:
        return self._model.encode_trusted(x, y)


def _hidden_sizes(hidden_dims: object, layers: int) -> tuple[tuple[int, ...], ...]:
    if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
        raise TypeError(f"hidden_dims must be a sequence of sequences of ints, got {hidden_dims!r}")
    if len(hidden_dims) != layers:
        raise ValueError(
            f"hidden_dims must give one sequence of hidden sizes per stochastic layer "
            f"({layers}, as latent_dims), got {len(hidden_dims)}"
        )
    out = []
    for i, sizes in enumerate(hidden_dims):
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TypeError(f"hidden_dims[{i}] must be a sequence of ints, got {sizes!r}")
        out.append(check_positive_ints(sizes, f"hidden_dims[{i}]") if len(sizes) else ())
    return tuple(out)


class HierarchicalVAE(VAE):
    r"""A VAE with :math:`L \geq 1` stochastic layers and Ladder VAE (top-down) inference.

    Layer :math:`l` (1 nearest the data) has ``latent_dims[l-1]`` dimensions and one
    deterministic MLP block with hidden sizes ``hidden_dims[l-1]`` each way: bottom-up,
    :math:`d_{l-1} \to` hidden :math:`\to (\hat\mu_l, \log\hat\sigma^2_l)`; and generative,
    :math:`z_l \to` the same hidden sizes reversed :math:`\to` the parameters of the layer
    below (:math:`p_\theta(z_{l-1} \mid z_l)`, or :math:`p_\theta(x \mid z_1)` for
    :math:`l = 1`). The posterior of each layer below the top merges its bottom-up
    Gaussian with :math:`p_\theta(z_l \mid z_{l+1})` by precision weighting (see the
    module). With :math:`L = 1` it is the plain VAE with MLPs.

    It is a :class:`~torchvae.VAE`: its forward returns a :class:`~torchvae.VAEOutput`
    whose ``log_px_z``, ``log_qz``, ``log_pz`` (joint over the layers) and ``kl`` the
    losses, :func:`~torchvae.log_likelihood` and the Trainer use unchanged. Its fields:
    ``z`` holds all layers' samples concatenated, :math:`[z_1, \dots, z_L]`, and ``mean``
    / ``log_var`` the parameters of each layer's :math:`q` given the sampled layer above,
    concatenated alike and shaped like ``z``; ``kl_per_dim`` concatenates the layers' KLs
    per dimension (where the prior has a closed form), ``kl_exact`` is false for
    :math:`L > 1` (the lower layers' KLs are closed forms given a sample of the layer above).
    ``latent_dim`` is the size of that whole ``z``; :meth:`decode` takes it (and uses
    :math:`z_1`). :meth:`encode` gives :math:`q_\phi(z_L \mid x)`, the top layer's posterior,
    the only one that is a Gaussian given :math:`x` alone, so that
    :func:`~torchvae.latent_report` and the other diagnostics describe the top layer
    exactly; :func:`~torchvae.layer_report` describes every layer.

    **Priors.** ``prior=`` is :math:`p(z_L)`, the top layer's: the built-in
    :class:`~torchvae.priors.StandardNormal` (default; closed-form KL),
    :class:`~torchvae.priors.MixturePrior`, :class:`~torchvae.priors.VampPrior` (its
    components are the top layer's posteriors at the pseudo-inputs) and
    :class:`~torchvae.priors.FlowPrior`; other priors are refused. The posterior is the
    precision-weighted Gaussian itself: ``posterior=`` may only be ``None`` or
    :class:`~torchvae.posteriors.DiagonalGaussian`. The model is not conditional.

    Args:
        data_shape: the shape of one example (``784`` or ``(1, 28, 28)``).
        latent_dims: the size of each stochastic layer, bottom (nearest the data) first.
        hidden_dims: for each layer, the hidden sizes of its deterministic block (may be
            empty: a linear block).
        activation: ``"tanh"`` (as Burda et al.), ``"relu"``, ``"leaky_relu"`` (0.2, the
            textbook's) or ``"elu"``.
        likelihood: :math:`p_\theta(x \mid z_1)`; default :class:`~torchvae.Bernoulli`.
        prior: :math:`p(z_L)`; default :class:`~torchvae.priors.StandardNormal`.
        posterior: ``None`` or :class:`~torchvae.posteriors.DiagonalGaussian`.

    Raises:
        TypeError: a part is of the wrong kind (an unsupported prior or posterior).
        ValueError: sizes that do not fit (the message names them).

    Example:
        >>> model = HierarchicalVAE.burda()
        >>> out = model(torch.rand(8, 784), n_samples=5)
        >>> out.z.shape, out.log_pz.shape, model.latent_dims
        (torch.Size([5, 8, 150]), torch.Size([5, 8]), (100, 50))
        >>> model.sample(2).shape
        torch.Size([2, 784])
    """

    def __init__(
        self,
        data_shape: int | Sequence[int],
        latent_dims: Sequence[int],
        hidden_dims: Sequence[Sequence[int]],
        *,
        activation: ActivationName = "tanh",
        likelihood: Likelihood | None = None,
        prior: Prior | None = None,
        posterior: Posterior | None = None,
    ) -> None:
        nn.Module.__init__(self)
        shape = (
            (check_positive_int(data_shape, "data_shape"),)
            if isinstance(data_shape, int)
            else check_positive_ints(data_shape, "data_shape")
        )
        dims = check_positive_ints(latent_dims, "latent_dims")
        if not dims:
            raise ValueError("latent_dims must name at least one stochastic layer, got ()")
        hidden = _hidden_sizes(hidden_dims, len(dims))
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        # What the VAE's methods read; this model takes no labels.
        self.num_classes = None
        self.embedding = None
        self.embedding_dim = 0
        self.embedding_kind = "one_hot"
        self.label_as_channels = False
        self.data_shape = shape
        self.latent_dims, self.hidden_dims, self.activation = dims, hidden, activation
        self.latent_dim = sum(dims)
        self.likelihood = check_likelihood(likelihood)
        act = _ACTIVATIONS[activation]
        blocks, width = [], math.prod(shape)
        for d, sizes in zip(dims, hidden, strict=True):
            blocks.append(Encoder(width, sizes, d, act))
            width = sizes[-1] if sizes else width
        self.encoder = nn.ModuleList(blocks)
        self.top_down = nn.ModuleList(
            Encoder(dims[i + 1], hidden[i + 1][::-1], dims[i], act) for i in range(len(dims) - 1)
        )
        out_features = math.prod(self.likelihood.params_shape(shape))
        self.decoder = Decoder(dims[0], hidden[0][::-1], out_features, act)
        if posterior is not None and type(posterior) is not DiagonalGaussian:
            raise TypeError(
                f"posterior must be None or DiagonalGaussian(): HierarchicalVAE's posterior is "
                f"the Ladder VAE's precision-weighted Gaussian, got {type(posterior).__name__}"
            )
        self.posterior_head: Posterior = DiagonalGaussian()
        self.posterior_head.bind(dims[-1])
        self.prior: Prior = StandardNormal() if prior is None else self._check_prior(prior)
        self.prior.bind(cast(VAE, _TopLayer(self)))

    def _check_prior(self, prior: object) -> Prior:
        if type(prior) not in _PRIORS:
            names = ", ".join(p.__name__ for p in _PRIORS)
            raise TypeError(
                f"prior must be one of torchvae.priors' {names} (the top layer's p(z_L)), "
                f"got {type(prior).__name__}"
            )
        prior = cast(Prior, prior)
        top = self.latent_dims[-1]
        if prior.latent_dim is not None and prior.latent_dim != top:
            raise ValueError(
                f"prior={type(prior).__name__}(latent_dim={prior.latent_dim}) is the top "
                f"layer's prior, which has latent_dims[-1] = {top} dimensions; build it with "
                f"latent_dim={top} or leave latent_dim out"
            )
        return prior

    @classmethod
    def burda(
        cls,
        data_shape: int | Sequence[int] = 784,
        *,
        likelihood: Likelihood | None = None,
        prior: Prior | None = None,
    ) -> Self:
        r"""Burda et al.'s (2016) two-layer MLP: 784-[200, 200]-100-[100, 100]-50, tanh.

        Layer 1 has 100 dimensions over two tanh layers of 200 (bottom-up from :math:`x`,
        and :math:`p(x \mid z_1)`: 100-200-200-784); layer 2 has 50 over two of 100
        (bottom-up from the 200-wide :math:`d_1`, and :math:`p(z_1 \mid z_2)`:
        50-100-100-100). Burda et al.'s inference network is bottom-up
        (:math:`q(z_1 \mid x)\,q(z_2 \mid z_1)`); this one infers top-down as in the
        Ladder VAE, with the same sizes.

        Args:
            data_shape: the shape of one example (default 784).
            likelihood: default :class:`~torchvae.Bernoulli`.
            prior: :math:`p(z_2)`; default :class:`~torchvae.priors.StandardNormal`.
        """
        return cls(
            data_shape,
            (100, 50),
            ((200, 200), (100, 100)),
            activation="tanh",
            likelihood=likelihood,
            prior=prior,
        )

    # --- the networks -----------------------------------------------------------------------

    def _bottom_up(self, x: Tensor) -> list[GaussianParams]:
        h, out = x.reshape(x.shape[0], -1), []
        for block in cast(nn.ModuleList, self.encoder):
            h, params = _gaussian_head(cast(Encoder, block), h)
            out.append(params)
        return out

    def _labels(
        self, y: object, batch: int, device: torch.device, name: str = "y"
    ) -> Tensor | None:
        if y is not None:
            raise ValueError(f"{name} was given but HierarchicalVAE takes no class labels")
        return None

    def _encode(self, x: Tensor, e: Tensor | None) -> GaussianParams:
        return self._bottom_up(x)[-1]

    def _conditional(self, index: int, z_above: Tensor) -> GaussianParams:
        """:math:`p(z_l \\mid z_{l+1})` for the layer at 0-based ``index``."""
        return _gaussian_head(cast(Encoder, self.top_down[index]), z_above)[1]

    def _decode_bottom(self, z1: Tensor) -> Tensor:
        lead = z1.shape[:-1]
        logits = run_decoder(self.decoder, z1.reshape(-1, z1.shape[-1]))
        return logits.reshape(*lead, *logits.shape[1:])

    def _decode(self, z: Tensor, e: Tensor | None) -> Tensor:
        return self._decode_bottom(z[..., : self.latent_dims[0]])

    def _infer(
        self,
        x: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
        location: bool = False,
        noise: Sequence[Tensor] | None = None,
    ) -> tuple[LatentLayer, ...]:
        """The bottom-up pass, then the top-down one: sampled, on given noise, or the means."""
        up = self._bottom_up(x)
        top = up[-1]
        z, log_q = _draw(top, n_samples, generator, location, None if noise is None else noise[-1])
        log_p = self.prior.log_prob(z)
        closed = None if location else self.prior.kl_closed_form(self.posterior_head, top)
        per_dim = closed if closed is not None and closed.ndim == 2 else None
        kl = log_q - log_p if closed is None else closed if per_dim is None else per_dim.sum(-1)
        layers = [LatentLayer(z, top, None, log_q, log_p, kl, per_dim)]
        for i in range(len(up) - 2, -1, -1):
            p = self._conditional(i, z)
            q = _merge(up[i], p)
            z, log_q = _draw(q, None, generator, location, None if noise is None else noise[i])
            per_dim = _gaussian_kl(q, p)
            layers.append(LatentLayer(z, q, p, log_q, p.log_prob(z), per_dim.sum(-1), per_dim))
        return tuple(layers[::-1])

    # --- the model's surface ----------------------------------------------------------------

    def infer(
        self,
        x: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
        *,
        sample: bool = True,
    ) -> tuple[LatentLayer, ...]:
        r"""Every layer's posterior, sample and KL for ``x``, bottom layer first.

        Args:
            x: ``(batch, ...)``.
            n_samples: ``k`` samples per example, stacked in front; ``None`` for one.
            generator: optional random generator.
            sample: ``False`` for the deterministic path of posterior means
                (:math:`z_L = \hat\mu_L`, then :math:`z_l = \mu_{q,l}` given the mean above).
        """
        x = self._prepare(x)
        if n_samples is not None:
            check_positive_int(n_samples, "n_samples")
        check_generator(generator, x.device)
        layers = self._infer(x, n_samples if sample else None, generator, not sample)
        check_posterior(layers[0].q, layers[0].z, x)
        return layers

    def split(self, t: Tensor) -> tuple[Tensor, ...]:
        """Split a tensor over the whole latent (``z``, ``kl_per_dim``, ...) into its layers."""
        bounds = [0, *itertools.accumulate(self.latent_dims)]
        return tuple(t[..., a:b] for a, b in itertools.pairwise(bounds))

    def forward(
        self,
        x: Tensor,
        y: Tensor | None = None,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        r"""Sample every layer top-down, decode :math:`z_1`, and score the joint terms.

        Args:
            x: ``(batch, ...)``, valid data for the likelihood.
            y: must be ``None`` (the model is not conditional).
            n_samples: ``None`` for one sample per example, ``k`` for ``k`` stacked in front.
            generator: optional random generator.

        Returns:
            A :class:`~torchvae.VAEOutput` (see the class for its fields).
        """
        x = self._prepare(x)
        self._labels(y, x.shape[0], x.device)
        if n_samples is not None:
            check_positive_int(n_samples, "n_samples")
        check_generator(generator, x.device)
        self.likelihood.validate_target(x)
        layers = self._infer(x, n_samples, generator)
        lead = layers[0].z.shape[:-1]
        z = torch.cat([layer.z for layer in layers], -1)
        mean = torch.cat([layer.q.mean.expand(*lead, -1) for layer in layers], -1)
        log_var = torch.cat([layer.q.log_var.expand(*lead, -1) for layer in layers], -1)
        check_posterior(GaussianParams(mean, log_var), z, x)
        logits = self._decode_bottom(layers[0].z).reshape(*lead[:-1], *x.shape)
        log_px_z = self.likelihood._log_prob(logits, x.to(logits.dtype))
        log_qz = torch.stack([layer.log_q.expand(lead) for layer in layers]).sum(0)
        log_pz = torch.stack([layer.log_p.expand(lead) for layer in layers]).sum(0)
        kl = torch.stack([layer.kl.expand(lead) for layer in layers]).sum(0)
        per_dims = [layer.kl_per_dim for layer in layers]
        per_dim = None
        if all(d is not None for d in per_dims):
            per_dim = torch.cat([cast(Tensor, d).expand(*lead, -1) for d in per_dims], -1)
        if n_samples is not None:
            kl = kl.mean(0)
            per_dim = None if per_dim is None else per_dim.mean(0)
        exact = len(layers) == 1 and layers[0].kl_per_dim is not None
        return VAEOutput(
            logits, mean, log_var, z, log_px_z, kl, per_dim, log_qz, log_pz, self.likelihood, exact
        )

    def _log_weights(self, x: Tensor, noise: Sequence[Tensor]) -> Tensor:
        """``log p(x, z) - log q(z | x)`` of the path that ``noise`` (one per layer) draws."""
        layers = self._infer(x, noise=noise)
        lead = layers[0].z.shape[:-1]
        logits = self._decode_bottom(layers[0].z).reshape(*lead[:-1], *x.shape)
        log_w = self.likelihood._log_prob(logits, x.to(logits.dtype))
        for layer in layers:
            log_w = log_w + layer.log_p - layer.log_q
        return log_w

    def noise_of(self, out: VAEOutput) -> tuple[Tensor, ...]:
        r"""The standard normal noise :math:`\varepsilon_l = (z_l - \mu_{q,l}) / \sigma_{q,l}`
        that drew ``out``'s samples, one tensor per layer (detached)."""
        eps = ((out.z - out.mean) * torch.exp(-0.5 * out.log_var)).detach()
        return self.split(eps)

    @torch.no_grad()
    def _reconstruct(
        self, x: object, y: object, sample: bool, generator: torch.Generator | None, draw: bool
    ) -> Tensor:
        x = self._prepare(x)
        self._labels(y, x.shape[0], x.device)
        check_generator(generator, x.device)
        layers = self._infer(x, None, generator, not sample)
        check_posterior(layers[0].q, layers[0].z, x)
        return self._output(self._decode_bottom(layers[0].z), draw, generator).reshape(x.shape)

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
        check_generator(generator, self._like_params()[0])
        self._labels(y, n, self._like_params()[0])
        if sampler is None:
            z = self.prior.sample(n, None, temperature, generator)
        else:
            z = self._sampler_latent(sampler, n, generator, temperature, self.latent_dims[-1])
        for i in range(len(self.latent_dims) - 2, -1, -1):
            p = self._conditional(i, z)
            if temperature == 0:
                z = p.mean
            else:
                scaled = GaussianParams(p.mean, p.log_var + 2.0 * math.log(temperature))
                z = _draw(scaled, None, generator, False, None)[0]
        logits = self._decode_bottom(z)
        assert self.data_shape is not None
        return self._output(logits, draw, generator).reshape(n, *self.data_shape)

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
        r"""Draw ``n`` examples: :math:`z_L \sim p(z_L)`, then each layer down, then :math:`x`.

        ``temperature`` :math:`t` scales the prior's spread (as for the VAE) and every
        conditional's standard deviation, :math:`z_l = \mu_{p,l} + t\,\sigma_{p,l}
        \varepsilon` (:math:`t = 0`: the means all the way down).

        Returns:
            ``(n, *data_shape)``: the means of :math:`p_\theta(x \mid z_1)` (draws with
            ``draw=True``).

        ``sampler`` draws the top layer's :math:`z_L` instead of the prior (e.g. a
        :class:`~torchvae.GaussianMixtureSampler` fitted to the top layer's codes).
        """
        return self._sample(n, y, generator, temperature, draw, sampler)

    @torch.no_grad()
    def _interpolate(self, x1: object, x2: object, y1: object, y2: object, steps: object) -> Tensor:
        self._labels(y1, 0, self._like_params()[0], "y1")
        self._labels(y2, 0, self._like_params()[0], "y2")
        steps, a, b = prepare_endpoints(self._prepare, x1, x2, steps)
        ends = []
        for name, v in (("x1", a), ("x2", b)):
            layers = self._infer(v, location=True)
            check_posterior(layers[0].q, layers[0].z, v, name)
            ends.append(torch.cat([layer.z for layer in layers], -1))
        t = torch.linspace(0, 1, steps, device=a.device, dtype=ends[0].dtype).view(-1, 1, 1)
        z = (1 - t) * ends[0] + t * ends[1]
        return self.likelihood.mean(self._decode(z, None)).reshape(steps, *a.shape)

    def interpolate(
        self,
        x1: Tensor,
        x2: Tensor,
        steps: int = 10,
        *,
        y1: Tensor | None = None,
        y2: Tensor | None = None,
    ) -> Tensor:
        r"""Decode points on the line between the posterior-mean paths of ``x1`` and ``x2``.

        :math:`z_t = (1 - t)\,\bar z(x_1) + t\,\bar z(x_2)` over all layers, where
        :math:`\bar z(x)` is the deterministic path of :meth:`infer` with ``sample=False``;
        the ends are the reconstructions. Returns ``(steps, *x1.shape)``.
        """
        return self._interpolate(x1, x2, y1, y2, steps)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        r""":math:`q_\phi(z_L \mid x)`, the top layer's posterior, as a distribution."""
        return super().posterior(x, y)

    def extra_repr(self) -> str:
        return (
            f"latent_dims={self.latent_dims}, hidden_dims={self.hidden_dims}, "
            f"activation={self.activation!r}"
        )


def _hierarchical_config(m: HierarchicalVAE) -> Config:
    assert m.data_shape is not None
    return {
        "data_shape": list(m.data_shape),
        "latent_dims": list(m.latent_dims),
        "hidden_dims": [list(h) for h in m.hidden_dims],
        "activation": m.activation,
        "likelihood": m.likelihood,
        "prior": m.prior,
        "posterior": m.posterior_head,
    }


register_serializable(HierarchicalVAE, _hierarchical_config, lambda c: HierarchicalVAE(**c))
