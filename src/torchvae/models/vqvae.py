r"""The VQ-VAE (van den Oord et al., 2017): discrete latents from a learned codebook.

.. math::
    z_e = f_\phi(x) \in \mathbb{R}^{D \times h \times w}, \qquad
    k_{ij} = \arg\min_c \lVert z_{e,ij} - e_c \rVert^2, \qquad
    x \sim p_\theta(x \mid z_q), \quad z_{q,ij} = e_{k_{ij}}.

The posterior :math:`q(k \mid x)` is a point mass on the nearest codes; with a uniform
prior over the :math:`K^{hw}` code maps its KL is the constant :math:`hw \log K`, so
training minimizes the reconstruction term :math:`-\log p_\theta(x \mid z_q)` plus the
codebook and commitment terms of :class:`~torchvae.VQLoss`, with straight-through
gradients through the quantization (:class:`~torchvae.Codebook`). A learned prior over
the code maps (:class:`~torchvae.PixelCNNPrior`, fitted afterwards on the codes of the
training set with :func:`~torchvae.fit_code_prior`) makes the model generative:
:meth:`VQVAE.sample` draws code maps from it and decodes them.

A :class:`VQVAE` is not a :class:`~torchvae.VAE` (it has no Gaussian posterior and no
KL); it trains with the :class:`~torchvae.Trainer` unchanged, given a
:class:`~torchvae.VQLoss`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Self

from .._validation import check_generator, check_positive_int, trusted_inputs, validation_enabled
from ..io.registry import Config, register_serializable
from ..likelihoods import Likelihood, check_likelihood
from ._inputs import prepare_input, run_decoder
from .code_prior import PixelCNNPrior
from .codebook import Codebook

__all__ = ["VQVAE", "VQVAEOutput"]


class VQVAEOutput(NamedTuple):
    r"""What :meth:`VQVAE.forward` returns.

    Attributes:
        logits: the decoder's output (the likelihood's parameters), ``x``'s shape.
        z_e: the encoder's map :math:`z_e(x)`, ``(batch, D, *spatial)``.
        z_q: the quantized map with straight-through gradients, ``z_e``'s shape.
        indices: the code of each position, ``(batch, *spatial)``, int64.
        log_px_z: :math:`\log p_\theta(x \mid z_q)` per example, ``(batch,)``.
        codebook_loss: :math:`\lVert \operatorname{sg}(z_e) - z_q \rVert^2` per example
            (summed over positions and dimensions), ``(batch,)``; zeros with an EMA
            codebook.
        commitment: :math:`\lVert z_e - \operatorname{sg}(z_q) \rVert^2` per example,
            ``(batch,)``.
        perplexity: the batch's code perplexity (see :class:`~torchvae.Quantized`).
        usage: the fraction of the codes the batch used.
        likelihood: the model's :math:`p_\theta(x \mid z)`.
        num_codes: :math:`K`, the codebook's size.
    """

    logits: Tensor
    z_e: Tensor
    z_q: Tensor
    indices: Tensor
    log_px_z: Tensor
    codebook_loss: Tensor
    commitment: Tensor
    perplexity: Tensor
    usage: Tensor
    likelihood: Likelihood
    num_codes: int

    @property
    def x_hat(self) -> Tensor:
        r"""The reconstruction, the mean of :math:`p_\theta(x \mid z_q)`."""
        return self.likelihood.mean(self.logits)


def _data_shape(encoder: nn.Module) -> tuple[int, ...] | None:
    shape, dim = getattr(encoder, "input_shape", None), getattr(encoder, "input_dim", None)
    if isinstance(shape, Sequence) and shape and all(isinstance(s, int) for s in shape):
        return tuple(shape)
    return (dim,) if isinstance(dim, int) and not isinstance(dim, bool) else None


class VQVAE(nn.Module):
    r"""A vector-quantized autoencoder with a likelihood, and optionally a prior to sample.

    **The interface.** ``encoder(x)`` returns the map :math:`z_e(x)`, ``(batch, D,
    *spatial)`` (for example :class:`~torchvae.VQEncoder`'s ``(batch, D, h, w)``, or
    ``(batch, D)`` for one code per example); the decoder takes the quantized map of the
    same shape and returns the likelihood's parameters through ``decoder.logits(z_q)``
    (or probabilities from ``decoder(z_q)``, as for :class:`~torchvae.VAE`). Where the
    networks have an int attribute ``embedding_dim`` it must equal the codebook's ``dim``.

    In training mode the forward pass also updates the codebook's buffers (EMA
    statistics, dead-code restarts; see :class:`~torchvae.Codebook`); in evaluation mode
    it changes nothing.

    Args:
        encoder: :math:`x \mapsto z_e(x)`.
        decoder: :math:`z_q \mapsto` the likelihood's parameters.
        codebook: the :class:`~torchvae.Codebook` (its ``dim`` is :math:`D`).
        likelihood: :math:`p_\theta(x \mid z_q)`; default :class:`~torchvae.Bernoulli`.
        prior: a fitted :class:`~torchvae.PixelCNNPrior` over the code maps, for
            :meth:`sample`; usually set later by :func:`~torchvae.fit_code_prior`
            (``model.prior`` is ``None`` until then).

    Raises:
        TypeError: a part is not a module of the right kind.
        ValueError: the parts' sizes do not fit together (the message names them).

    Example:
        >>> from torchvae import Codebook, VQDecoder, VQEncoder, VQLoss
        >>> model = VQVAE(VQEncoder(embedding_dim=8), VQDecoder(embedding_dim=8),
        ...               Codebook(num_codes=32, dim=8))
        >>> x = torch.rand(4, 1, 28, 28)
        >>> out = model(x)
        >>> out.indices.shape, out.x_hat.shape
        (torch.Size([4, 7, 7]), torch.Size([4, 1, 28, 28]))
        >>> VQLoss(beta=0.25)(out, x).total.shape
        torch.Size([])
    """

    num_classes: int | None = None
    is_conditional: bool = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        codebook: Codebook,
        *,
        likelihood: Likelihood | None = None,
        prior: PixelCNNPrior | None = None,
    ) -> None:
        super().__init__()
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        if not isinstance(codebook, Codebook):
            raise TypeError(f"codebook must be a torchvae Codebook, got {type(codebook).__name__}")
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            dim = getattr(module, "embedding_dim", None)
            if isinstance(dim, int) and dim != codebook.dim:
                raise ValueError(
                    f"{name}.embedding_dim ({dim}) must equal the codebook's dim ({codebook.dim})"
                )
        self.encoder, self.decoder, self.codebook = encoder, decoder, codebook
        self.likelihood = check_likelihood(likelihood)
        self.data_shape = _data_shape(encoder)
        self._check_decoder(decoder)
        self.prior: PixelCNNPrior | None = None
        if prior is not None:
            self.set_prior(prior)
        like = next(iter(encoder.parameters()), None)
        if like is not None:
            for part in (self.likelihood, self.codebook):
                part.to(like)

    def _check_decoder(self, decoder: nn.Module) -> None:
        shape = getattr(decoder, "output_shape", None)
        if self.data_shape is None or not isinstance(shape, Sequence):
            return
        want = math.prod(self.likelihood.params_shape(self.data_shape))
        if math.prod(shape) != want:
            raise ValueError(
                f"decoder.output_shape {tuple(shape)} gives {math.prod(shape)} features per "
                f"example but the encoder takes examples of shape {self.data_shape}, for "
                f"which {type(self.likelihood).__name__} needs {want}"
            )

    @property
    def num_codes(self) -> int:
        """:math:`K`, the codebook's size."""
        return self.codebook.num_codes

    def set_prior(self, prior: PixelCNNPrior) -> None:
        """Attach a prior over the code maps (what :meth:`sample` draws from).

        Raises:
            TypeError: ``prior`` is not a :class:`~torchvae.PixelCNNPrior`.
            ValueError: its number of codes or code map shape differs from the model's.
        """
        if not isinstance(prior, PixelCNNPrior):
            raise TypeError(f"prior must be a PixelCNNPrior, got {type(prior).__name__}")
        if prior.num_codes != self.num_codes:
            raise ValueError(
                f"the prior models {prior.num_codes} codes but the codebook has {self.num_codes}"
            )
        shape = getattr(self.encoder, "code_shape", None)
        if isinstance(shape, Sequence) and tuple(shape) != prior.code_shape:
            raise ValueError(
                f"the prior models code maps of shape {prior.code_shape} but the encoder "
                f"gives {tuple(shape)}"
            )
        self.prior = prior

    # --- plumbing -------------------------------------------------------------------------

    def _like_params(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            return p.device, p.dtype
        return self.codebook.embedding.device, self.codebook.embedding.dtype

    def _prepare(self, x: object) -> Tensor:
        features = None if self.data_shape is None else math.prod(self.data_shape)
        return prepare_input(x, *self._like_params(), features)

    def _encode(self, x: Tensor) -> Tensor:
        with trusted_inputs():
            z_e: Tensor = self.encoder(x)
        if not isinstance(z_e, Tensor) or z_e.ndim < 2 or z_e.shape[0] != x.shape[0]:
            got = tuple(z_e.shape) if isinstance(z_e, Tensor) else type(z_e).__name__
            raise ValueError(
                f"encoder must return a map (batch, D, *spatial) with batch = {x.shape[0]}, "
                f"got {got}"
            )
        if validation_enabled() and not bool(torch.isfinite(z_e).all()):
            largest = float(x.abs().max()) if x.numel() else 0.0
            raise ValueError(
                f"the encoder's output for x is not finite: x's values (largest |x| = "
                f"{largest:g}) overflow the model's arithmetic, or x holds NaN/inf; scale x "
                f"to a moderate range such as [0, 1], or check the model's weights"
            )
        return z_e

    def _decode(self, z_q: Tensor) -> Tensor:
        return run_decoder(self.decoder, z_q)

    def _output(self, logits: Tensor, draw: bool, generator: torch.Generator | None) -> Tensor:
        return self.likelihood.sample(logits, generator) if draw else self.likelihood.mean(logits)

    # --- the model ------------------------------------------------------------------------

    def forward(
        self, x: Tensor, y: Tensor | None = None, n_samples: int | None = None
    ) -> VQVAEOutput:
        r"""Encode, quantize (updating the codebook in training mode), decode, and score.

        Args:
            x: ``(batch, ...)``, valid data for the likelihood.
            y: not supported (the model is not conditional); an error if given.
            n_samples: not supported (the posterior is a point mass); an error if given.

        Returns:
            A :class:`VQVAEOutput`.
        """
        if y is not None:
            raise ValueError("y was given but a VQVAE is not conditional")
        if n_samples is not None:
            raise ValueError(
                "a VQVAE's posterior is a point mass on the nearest codes: it takes no "
                "n_samples (importance-weighted objectives do not apply); train it with VQLoss"
            )
        x = self._prepare(x)
        self.likelihood.validate_target(x)
        z_e = self._encode(x)
        q = self.codebook(z_e)
        logits = self._decode(q.z_q)
        if logits.shape[1:].numel() != x.shape[1:].numel():
            raise ValueError(
                f"decoder output has {logits.shape[1:].numel()} features per example but x "
                f"has {x.shape[1:].numel()} (x shape {tuple(x.shape)}, decoder output shape "
                f"{tuple(logits.shape)})"
            )
        logits = logits.reshape(x.shape)
        log_px_z = self.likelihood._log_prob(logits, x.to(logits.dtype))
        return VQVAEOutput(
            logits,
            z_e,
            q.z_q,
            q.indices,
            log_px_z,
            q.codebook_loss,
            q.commitment,
            q.perplexity,
            q.usage,
            self.likelihood,
            self.num_codes,
        )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        r"""The encoder's map :math:`z_e(x)`, ``(batch, D, *spatial)``."""
        return self._encode(self._prepare(x))

    @torch.no_grad()
    def encode_indices(self, x: Tensor) -> Tensor:
        """The code map of ``x``: the index of the nearest code at each position,
        ``(batch, *spatial)``, int64. Never changes the codebook."""
        return self.codebook.nearest(self.encode(x))

    def decode_logits(self, indices: Tensor) -> Tensor:
        """The decoder's output (the likelihood's parameters) for code maps ``indices``."""
        device = self._like_params()[0]
        if not isinstance(indices, Tensor) or indices.device != device:
            where = indices.device if isinstance(indices, Tensor) else type(indices).__name__
            raise ValueError(f"indices must be a tensor on {device}, got {where}")
        return self._decode(self.codebook.lookup(indices))

    @torch.no_grad()
    def decode(
        self, indices: Tensor, draw: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""The mean of :math:`p_\theta(x \mid z_q)` for code maps ``indices`` (a draw with
        ``draw=True``), the decoder's output shape."""
        return self._output(self.decode_logits(indices), draw, generator)

    @torch.no_grad()
    def reconstruct(
        self, x: Tensor, draw: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Decode the nearest codes of ``x``: the mean of :math:`p_\theta(x \mid z_q(x))`,
        ``x``'s shape (a draw with ``draw=True``). Never changes the codebook."""
        x = self._prepare(x)
        codes = self.codebook.lookup(self.codebook.nearest(self._encode(x)))
        return self._output(self._decode(codes), draw, generator).reshape(x.shape)

    latent_diagnostics = False
    """The Gaussian-posterior diagnostics (KL per dimension, active units) do not apply to
    discrete codes; the TensorBoard logger skips them."""

    @property
    def can_sample(self) -> bool:
        """Whether :meth:`sample` works: the model has a prior over its code maps."""
        return self.prior is not None

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        *,
        draw: bool = False,
    ) -> Tensor:
        r"""Draw ``n`` examples: code maps from the learned prior, decoded.

        Args:
            n: how many.
            generator: optional random generator on the parameters' device (for the
                prior's draws and, with ``draw=True``, the likelihood's).
            temperature: :math:`t \geq 0`, applied to the prior's logits (see
                :meth:`PixelCNNPrior.sample <torchvae.PixelCNNPrior.sample>`).
            draw: return a draw from :math:`p_\theta(x \mid z_q)` instead of its mean.

        Returns:
            ``(n, *decoder output shape)``.

        Raises:
            ValueError: the model has no prior yet (fit one with
                :func:`~torchvae.fit_code_prior`).
        """
        n = check_positive_int(n, "n")
        if self.prior is None:
            raise ValueError(
                "this VQVAE has no prior over its code maps, so it cannot sample: fit one "
                "with torchvae.fit_code_prior(model, train_data) (or model.set_prior(prior))"
            )
        check_generator(generator, self._like_params()[0])
        indices = self.prior.sample(n, generator=generator, temperature=temperature)
        return self._output(self.decode_logits(indices), draw, generator)

    # --- files ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the architecture (as JSON) and weights to ``path``, atomically; see
        :func:`torchvae.io.serialization.save_model`."""
        from ..io.serialization import save_model

        save_model(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None
    ) -> Self:
        """Rebuild a model written by :meth:`save`; no code from the file runs."""
        from ..io.serialization import load_model

        return load_model(path, map_location, expected_type=cls)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, embedding_dim={self.codebook.dim}"


def _vqvae_config(m: VQVAE) -> Config:
    config: Config = {
        "encoder": m.encoder,
        "decoder": m.decoder,
        "codebook": m.codebook,
        "likelihood": m.likelihood,
    }
    if m.prior is not None:
        config["prior"] = m.prior
    return config


register_serializable(
    VQVAE,
    _vqvae_config,
    lambda c: VQVAE(
        c["encoder"],
        c["decoder"],
        c["codebook"],
        likelihood=c.get("likelihood"),
        prior=c.get("prior"),
    ),
)
