"""What the disentangling objectives share: argument checks and the parts of the bound.

Every objective here starts from the model's output like :class:`~torchvae.ELBOLoss`: the
reconstruction term :math:`-\\mathbb{E}_q \\log p(x \\mid z)` with the model's likelihood
and the model's KL, closed form or Monte Carlo. Some also need the posterior to be the
diagonal Gaussian and the prior the standard normal; :func:`gaussian_posterior` checks it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

from ..likelihoods import Likelihood
from ..models.vae import VAEOutput
from ._terms import check_output, model_likelihood, terms

__all__ = ["BoundParts", "bound_parts", "check_weight", "gaussian_posterior", "one_sample"]


class BoundParts(NamedTuple):
    """The ELBO's parts for one batch, each a scalar in nats per example."""

    reconstruction: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None
    kl_exact: bool


def check_weight(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a finite float >= 0 (> 0 with ``positive``), else a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite float {want}, got {value}")
    return value


def one_sample(out: VAEOutput, who: str) -> Tensor:
    """The latent samples ``(batch, latent_dim)``; several per example are refused."""
    if out.z.ndim != 2:
        raise ValueError(
            f"{who} needs one latent sample per example, z of shape (batch, latent_dim); got "
            f"z of shape {tuple(out.z.shape)}: call model(x) without n_samples"
        )
    return out.z


def bound_parts(out: object, x: Tensor, likelihood: Likelihood | None, who: str) -> BoundParts:
    """Check ``out`` against ``x`` and return its reconstruction term and KL.

    The likelihood is the model's (a ``likelihood`` given for a user-written model's bare
    output, Bernoulli by default); one sample per example is required.
    """
    out = check_output(out, x)
    one_sample(out, who)
    t = terms(out, x, model_likelihood(out.likelihood, likelihood, who), weights=False)
    kl_per_dim = None if t.kl_per_dim is None else t.kl_per_dim.mean(0)
    kl = t.kl.mean() if kl_per_dim is None else kl_per_dim.sum()
    return BoundParts(-t.log_px_z.mean(), kl, kl_per_dim, t.exact)


def gaussian_posterior(out: VAEOutput, who: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(z, mean, log_var)`` of a model whose posterior is the diagonal Gaussian and whose
    prior is the standard normal; any other pair is refused with a message.

    A torchvae model has a KL per latent dimension in closed form exactly for that pair
    (:class:`~torchvae.priors.StandardNormal` with
    :class:`~torchvae.posteriors.DiagonalGaussian`); a user-written model's bare output
    ``(logits, mean, log_var, z)`` means that pair too.
    """
    z = one_sample(out, who)
    if out.kl is not None and out.kl_per_dim is None:
        raise ValueError(
            f"{who} needs the diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(log_var))) "
            f"and the standard normal prior p(z) = N(0, I); this model has another pair (its "
            f"KL has no closed form per dimension: a FlowPosterior, or a MixturePrior, "
            f"VampPrior or FlowPrior). Build the VAE with the default prior and posterior"
        )
    return z, out.mean, out.log_var
