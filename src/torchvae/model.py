r"""The variational autoencoder: an encoder :math:`q_\phi(z \mid x)`, a decoder
:math:`p_\theta(x \mid z)` and the prior :math:`p(z) = \mathcal{N}(0, I)`, joined by the
reparameterization trick.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal
from typing_extensions import Self

from ._validation import (
    check_finite,
    check_floating,
    check_generator,
    check_positive_int,
    check_real,
    trusted_inputs,
    validation_enabled,
)
from .gaussian import GaussianParams, standard_normal

__all__ = ["VAE", "VAEOutput"]

# torch.logit's clamp for decoders that only give probabilities; see VAE.decode_logits.
_PROB_EPS = 1e-6


def prepare_input(
    x: object, device: torch.device, dtype: torch.dtype, features: int | None, name: str = "x"
) -> Tensor:
    """Check ``x``'s type, rank, device and size and cast it to the model's dtype.

    Its values are not read here (that would cost a device synchronisation per call):
    :func:`check_posterior` finds NaN/inf after the encoder, in one check.
    """
    x = check_floating(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (batch, ...), got shape {tuple(x.shape)}; "
            f"for a single example use {name}.unsqueeze(0)"
        )
    if x.device != device:
        raise ValueError(
            f"{name} is on {x.device} but the model's parameters are on {device}; "
            f"move one of them (e.g. {name}.to({str(device)!r}))"
        )
    if features is not None and x.shape[1:].numel() != features:
        raise ValueError(
            f"{name} must have {features} features per example, got shape {tuple(x.shape)}"
        )
    if x.dtype == dtype:
        return x
    check_finite(x, name)
    return check_finite(x.to(dtype), f"{name} (cast to the model's {dtype})")


def prepare_endpoints(
    prepare: Callable[[object, str], Tensor], x1: object, x2: object, steps: object
) -> tuple[int, Tensor, Tensor]:
    """Check :meth:`VAE.interpolate`'s arguments: ``steps >= 2``, ``x1`` and ``x2`` alike."""
    steps = check_positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 to include both ends, got {steps}")
    a, b = prepare(x1, "x1"), prepare(x2, "x2")
    if a.shape != b.shape:
        raise ValueError(
            f"x1 and x2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return steps, a, b


def check_posterior(q: GaussianParams, z: Tensor, x: Tensor, name: str = "x") -> None:
    """Raise a ``ValueError`` naming ``name`` if ``q`` or ``z`` holds NaN or inf.

    This one check of small tensors covers the input too: NaN/inf in ``x`` reaches the
    posterior, and the message then says it came from ``x``. A finite but huge input
    (say ``3e38``) overflows the encoder's arithmetic and is reported as such.
    """
    if not validation_enabled():
        return
    finite = torch.isfinite(q.mean).all() & torch.isfinite(q.log_var).all()
    if bool(finite & torch.isfinite(z).all()):
        return
    check_finite(x, name)
    largest = float(x.abs().max()) if x.numel() else 0.0
    raise ValueError(
        f"the posterior for {name} is not finite (NaN/inf in the encoder's mean or log_var "
        f"or in the sampled z): {name}'s values (largest |{name}| = {largest:g}) overflow "
        f"the model's {x.dtype} arithmetic; scale {name} to a moderate range such as [0, 1], "
        f"or check the model's weights"
    )


def run_encoder(encoder: nn.Module, inputs: Tensor, latent_dim: int) -> GaussianParams:
    """Call ``encoder`` on checked ``inputs`` and check the shapes of what it returns."""
    with trusted_inputs():
        mean, log_var = encoder(inputs)
    expected = (inputs.shape[0], latent_dim)
    if tuple(mean.shape) != expected or tuple(log_var.shape) != expected:
        raise ValueError(
            f"encoder must return mean and log_var of shape (batch, latent_dim) = "
            f"{expected}, got {tuple(mean.shape)} and {tuple(log_var.shape)}"
        )
    return GaussianParams(mean, log_var)


def run_decoder(decoder: nn.Module, z: Tensor) -> Tensor:
    """Logits of ``decoder`` for checked ``z`` of shape ``(batch, features)``.

    Uses ``decoder.logits`` when there is one; otherwise the logit of ``decoder(z)``,
    clamped to :math:`[10^{-6}, 1 - 10^{-6}]`.
    """
    logits_fn = getattr(decoder, "logits", None)
    with trusted_inputs():
        if logits_fn is not None:
            logits: Tensor = logits_fn(z)
        else:
            logits = torch.logit(decoder(z), eps=_PROB_EPS)
    return logits


class VAEOutput(NamedTuple):
    r"""What :meth:`VAE.forward` returns.

    Attributes:
        logits: decoder logits, ``x``'s shape (with ``n_samples=k``: ``(k, *x.shape)``).
        mean: posterior mean :math:`\mu_\phi(x)`, ``(batch, latent_dim)``.
        log_var: posterior log-variance :math:`\log\sigma^2_\phi(x)`, ``(batch, latent_dim)``.
        z: the reparameterized sample(s), ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.
    """

    logits: Tensor
    mean: Tensor
    log_var: Tensor
    z: Tensor

    @property
    def x_hat(self) -> Tensor:
        r"""The reconstruction :math:`\sigma(\text{logits})`, values in [0, 1]."""
        return torch.sigmoid(self.logits)

    @property
    def posterior(self) -> GaussianParams:
        r"""The parameters of :math:`q_\phi(z \mid x)`."""
        return GaussianParams(self.mean, self.log_var)


def make_output(q: GaussianParams, z: Tensor, logits: Tensor, x: Tensor) -> VAEOutput:
    """Check the decoder's ``logits`` for ``x`` and shape them like ``x`` (behind any samples)."""
    lead = z.shape[:-1]
    features = logits.shape[len(lead) :].numel()
    if features != x.shape[1:].numel():
        raise ValueError(
            f"decoder output has {features} features per example but x has "
            f"{x.shape[1:].numel()} (x shape {tuple(x.shape)}, decoder output shape "
            f"{tuple(logits.shape)})"
        )
    return VAEOutput(logits.reshape(*lead[:-1], *x.shape), q.mean, q.log_var, z)


class VAE(nn.Module):
    r"""A variational autoencoder built from any encoder and decoder.

    The forward pass encodes :math:`x` to :math:`q_\phi(z \mid x) = \mathcal{N}(\mu,
    \operatorname{diag}\sigma^2)`, draws :math:`z = \mu + \sigma \odot \varepsilon` with
    :math:`\varepsilon \sim \mathcal{N}(0, I)` (the reparameterization trick, so that
    gradients reach :math:`\phi`), and decodes :math:`z`.

    **The interface.** ``encoder(x)`` returns ``(mean, log_var)``, each
    ``(batch, latent_dim)``. ``decoder.logits(z)`` returns unconstrained outputs with
    ``x``'s number of features per example; a decoder with no ``logits`` method may
    instead return values in [0, 1] from ``decoder(z)`` (the VAE then takes their logit,
    clamped to :math:`[10^{-6}, 1 - 10^{-6}]`, which is less stable). One of the two
    must have an int attribute ``latent_dim``.

    Args:
        encoder: the inference network :math:`q_\phi(z \mid x)`.
        decoder: the generative network :math:`p_\theta(x \mid z)`.

    Example:
        >>> from torchvae import Encoder, Decoder
        >>> model = VAE(Encoder(784, 400, 20), Decoder(20, 400, 784))
        >>> out = model(torch.rand(8, 1, 28, 28))
        >>> out.x_hat.shape, out.z.shape
        (torch.Size([8, 1, 28, 28]), torch.Size([8, 20]))
        >>> model.sample(4).shape
        torch.Size([4, 784])
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        dims = {
            name: getattr(module, "latent_dim", None)
            for name, module in (("encoder", encoder), ("decoder", decoder))
        }
        known = {name: d for name, d in dims.items() if d is not None}
        if not known:
            raise ValueError(
                "encoder or decoder must have an int attribute latent_dim; neither has one"
            )
        if len(set(known.values())) > 1:
            raise ValueError(
                f"encoder.latent_dim ({known['encoder']}) and decoder.latent_dim "
                f"({known['decoder']}) differ"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = check_positive_int(next(iter(known.values())), "latent_dim")

    def _like_params(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            return p.device, p.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def _prepare(self, x: object, name: str = "x") -> Tensor:
        shape = getattr(self.encoder, "input_shape", None)
        if shape is None and isinstance(getattr(self.encoder, "input_dim", None), int):
            shape = (self.encoder.input_dim,)
        features = math.prod(shape) if isinstance(shape, tuple) else None
        return prepare_input(x, *self._like_params(), features, name)

    def _encode_prepared(self, x: Tensor) -> GaussianParams:
        return run_encoder(self.encoder, x, self.latent_dim)

    def encode(self, x: Tensor) -> GaussianParams:
        r"""The parameters ``(mean, log_var)`` of :math:`q_\phi(z \mid x)`.

        Args:
            x: ``(batch, ...)``, floating point, finite.
        """
        x = self._prepare(x)
        q = self._encode_prepared(x)
        check_posterior(q, q.mean, x)
        return q

    def posterior(self, x: Tensor) -> Independent[Normal]:
        r""":math:`q_\phi(z \mid x)` as a ``torch.distributions`` object."""
        return self.encode(x).distribution()

    def prior(self) -> Independent[Normal]:
        r"""The prior :math:`p(z) = \mathcal{N}(0, I)` on the parameters' device and dtype."""
        device, dtype = self._like_params()
        return standard_normal(self.latent_dim, device=device, dtype=dtype)

    def _decode_logits(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1]) if z.ndim != 2 else z
        logits = run_decoder(self.decoder, flat)
        return logits if z.ndim == 2 else logits.reshape(*lead, *logits.shape[1:])

    def _check_latent(self, z: object) -> Tensor:
        z = check_floating(z, "z")
        if z.ndim < 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (batch, latent_dim) or (k, batch, latent_dim) with "
                f"latent_dim = {self.latent_dim}, got shape {tuple(z.shape)}"
            )
        device, dtype = self._like_params()
        if z.device != device:
            raise ValueError(
                f"z is on {z.device} but the model's parameters are on {device}; "
                f"move one of them (e.g. z.to({str(device)!r}))"
            )
        if z.dtype == dtype:
            return check_finite(z, "z")
        check_finite(z, "z")
        return check_finite(z.to(dtype), f"z (cast to the model's {dtype})")

    def decode_logits(self, z: Tensor) -> Tensor:
        r"""Decoder logits for ``z``: ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.

        Args:
            z: latent codes, floating point, finite.

        Returns:
            ``(*z.shape[:-1], *decoder output shape)``.

        Raises:
            TypeError: ``z`` is not a floating-point tensor.
            ValueError: ``z`` has the wrong shape, device, or NaN/inf values.
        """
        return self._decode_logits(self._check_latent(z))

    def decode(self, z: Tensor) -> Tensor:
        r"""Decoded values in [0, 1], :math:`\sigma(\text{logits})`, in the decoder's own shape.

        Args:
            z: latent codes ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.

        Returns:
            ``(*z.shape[:-1], *decoder output shape)``, e.g. ``(batch, 784)``.
        """
        return torch.sigmoid(self.decode_logits(z))

    def forward(
        self,
        x: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        r"""Encode, sample :math:`z` with the reparameterization trick, decode.

        Args:
            x: ``(batch, ...)``: flat ``(batch, 784)`` or images ``(batch, 1, 28, 28)``.
            n_samples: ``None`` for one :math:`z` per example; ``k`` for ``k`` samples
                (importance-weighted objectives), stacked in a new leading dimension.
            generator: optional random generator for :math:`\varepsilon`.

        Returns:
            A :class:`VAEOutput`; ``x_hat`` and ``logits`` have ``x``'s shape (with
            ``(k,)`` in front when ``n_samples=k``).
        """
        x = self._prepare(x)
        if n_samples is not None:
            check_positive_int(n_samples, "n_samples")
        check_generator(generator, x.device)
        q = self._encode_prepared(x)
        z = q.rsample(n_samples, generator=generator)
        check_posterior(q, z, x)
        logits = self._decode_logits(z)
        return make_output(q, z, logits, x)

    @torch.no_grad()
    def reconstruct(
        self, x: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Reconstructions in [0, 1] with ``x``'s shape.

        Args:
            x: ``(batch, ...)``.
            sample: decode a sample of :math:`q_\phi(z \mid x)` instead of its mean (the
                default, which is deterministic).
            generator: optional random generator for the sample.
        """
        x = self._prepare(x)
        check_generator(generator, x.device)
        q = self._encode_prepared(x)
        z = q.rsample(generator=generator) if sample else q.mean
        check_posterior(q, z, x)
        return torch.sigmoid(self._decode_logits(z)).reshape(x.shape)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Draw ``n`` new examples: :math:`z \sim \mathcal{N}(0, t^2 I)`, decoded to [0, 1].

        Args:
            n: how many.
            generator: optional random generator on the parameters' device, for
                reproducible samples.
            temperature: scale :math:`t` of the prior's standard deviation.

        Returns:
            ``(n, *decoder output shape)``, e.g. ``(n, 784)`` for the MLP decoder and
            ``(n, 1, 28, 28)`` for the convolutional one.
        """
        n = check_positive_int(n, "n")
        temperature = check_real(temperature, "temperature")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite float >= 0, got {temperature}")
        device, dtype = self._like_params()
        check_generator(generator, device)
        z = torch.randn(n, self.latent_dim, device=device, dtype=dtype, generator=generator)
        return torch.sigmoid(self._decode_logits(z * temperature))

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 10) -> Tensor:
        r"""Decode points on the line between the posterior means of ``x1`` and ``x2``.

        :math:`z_t = (1 - t)\,\mu(x_1) + t\,\mu(x_2)` for ``steps`` values of :math:`t`
        from 0 to 1.

        Args:
            x1: ``(batch, ...)``.
            x2: the same shape as ``x1``.
            steps: number of points, >= 2.

        Returns:
            ``(steps, *x1.shape)``, values in [0, 1].
        """
        steps, x1, x2 = prepare_endpoints(self._prepare, x1, x2, steps)
        q1, q2 = self._encode_prepared(x1), self._encode_prepared(x2)
        check_posterior(q1, q1.mean, x1, "x1")
        check_posterior(q2, q2.mean, x2, "x2")
        m1, m2 = q1.mean, q2.mean
        t = torch.linspace(0, 1, steps, device=m1.device, dtype=m1.dtype).view(-1, 1, 1)
        z = (1 - t) * m1 + t * m2
        return torch.sigmoid(self._decode_logits(z)).reshape(steps, *x1.shape)

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
