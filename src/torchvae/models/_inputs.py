"""The checks a model makes at its surface, and the calls to its networks.

A :class:`~torchvae.VAE` checks its input once (type, rank, device, size; values through
one check of the posterior), then calls its encoder and decoder inside
:class:`~torchvae._validation.trusted_inputs` so that they do not check again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .._validation import (
    check_finite,
    check_floating,
    check_positive_int,
    check_positive_ints,
    trusted_inputs,
    validation_enabled,
)
from ..gaussian import GaussianParams

__all__ = [
    "check_posterior",
    "data_shape_of",
    "decoder_features",
    "latent_dim_of",
    "prepare_endpoints",
    "prepare_input",
    "run_decoder",
    "run_encoder",
]

# torch.logit's clamp for decoders that only give probabilities; see run_decoder.
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


def latent_dim_of(encoder: nn.Module, decoder: nn.Module, width: int) -> int:
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


def data_shape_of(encoder: nn.Module, width: int) -> tuple[tuple[int, ...] | None, bool]:
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


def decoder_features(decoder: nn.Module) -> int | None:
    shape, dim = getattr(decoder, "output_shape", None), getattr(decoder, "output_dim", None)
    if isinstance(shape, Sequence) and shape and all(isinstance(s, int) for s in shape):
        return math.prod(shape)
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None
