"""The terms of the bound, read from a model's output, for the losses and importance sampling.

A :class:`~torchvae.VAE` computes :math:`\\log p(x \\mid z)`, the KL and the log-densities
of its samples itself, with the likelihood and prior it owns. A user-written model may
return only ``(logits, mean, log_var, z)``; its terms are then computed here, with the
likelihood given to the loss (Bernoulli by default) and the standard normal prior.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from ..gaussian import GaussianParams, _gaussian_kl, standard_normal_log_prob
from ..likelihoods import Likelihood, check_likelihood, describe, same_likelihood
from ..models.vae import VAEOutput

__all__ = ["Terms", "check_output", "model_likelihood", "terms"]


class Terms(NamedTuple):
    """The parts of the bound for one batch (shapes as in :class:`~torchvae.VAEOutput`)."""

    log_px_z: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None
    log_qz: Tensor | None
    log_pz: Tensor | None
    exact: bool


def model_likelihood(owned: Likelihood | None, given: Likelihood | None, who: str) -> Likelihood:
    """The likelihood to score with: the model's, which an explicit one must agree with.

    Raises:
        TypeError: ``given`` is not a Likelihood.
        ValueError: ``given`` differs from the model's ``owned`` likelihood.
    """
    if given is not None:
        given = check_likelihood(given)
    if owned is None:
        return check_likelihood(given)
    if given is not None and not same_likelihood(given, owned):
        raise ValueError(
            f"{who} was given likelihood={describe(given)} but the model was built with "
            f"{describe(owned)}: p(x|z) belongs to the model. Build the model with "
            f"VAE(encoder, decoder, likelihood={describe(given)}) and leave likelihood= out "
            f"of {who}"
        )
    return owned


def check_output(out: object, x: Tensor) -> VAEOutput:
    """Check that ``out`` is a :class:`~torchvae.VAEOutput` that ``x`` fits."""
    if not isinstance(out, VAEOutput):
        raise TypeError(
            f"out must be the VAEOutput a VAE's forward returns, got {type(out).__name__}"
        )
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"x must have shape (batch, ...) with batch >= 1 examples, got shape {tuple(x.shape)}"
        )
    if x.device != out.logits.device:
        raise ValueError(f"x is on {x.device} but the model's output is on {out.logits.device}")
    want, why = tuple(x.shape), ""
    if out.likelihood is not None:
        try:
            want = (x.shape[0], *out.likelihood.params_shape(tuple(x.shape[1:])))
        except ValueError as e:
            why = f" ({e})"
    if tuple(out.logits.shape[out.logits.ndim - len(want) :]) != want:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but the model's output has shape "
            f"{tuple(out.logits.shape)}; pass the x the model was called with{why}"
        )
    return out


def terms(out: VAEOutput, x: Tensor, likelihood: Likelihood, weights: bool) -> Terms:
    """The bound's terms of ``out`` (checked by :func:`check_output`) for data ``x``.

    Args:
        out: the model's output.
        x: the data it was called with.
        likelihood: from :func:`model_likelihood`.
        weights: also return the log-densities of the samples (importance weights).
    """
    x = likelihood.validate_target(x)
    if out.log_px_z is not None and out.kl is not None:
        if weights and (out.log_qz is None or out.log_pz is None):
            raise ValueError(
                "importance weights need log q(z|x) and log p(z) of the samples: call the "
                "model with n_samples=k"
            )
        return Terms(out.log_px_z, out.kl, out.kl_per_dim, out.log_qz, out.log_pz, out.kl_exact)
    log_px_z = likelihood._log_prob(out.logits, x.to(out.logits.dtype))
    kl_per_dim = _gaussian_kl(out.mean, out.log_var)
    log_qz = log_pz = None
    if weights:
        log_qz = GaussianParams(out.mean, out.log_var).log_prob(out.z)
        log_pz = standard_normal_log_prob(out.z)
    return Terms(log_px_z, kl_per_dim.sum(-1), kl_per_dim, log_qz, log_pz, True)
