r"""Training objectives: the ELBO and the importance-weighted (IWAE) bound.

**Convention.** Every number is in nats *per example*: sums over the features of an
example (pixels) and over latent dimensions, mean over the batch. The loss to minimize is
the negative bound, so for the ELBO

.. math::
    \mathcal{L}(x) =
    \underbrace{-\mathbb{E}_{q_\phi(z\mid x)} \log p_\theta(x \mid z)}_{\text{reconstruction}}
    + \beta\, \underbrace{\mathrm{KL}\!\left(q_\phi(z \mid x)\,\|\,p(z)\right)}_{\text{kl}}
    \;\geq\; -\log p_\theta(x) \quad (\beta = 1).

With ``beta=1`` and the Bernoulli likelihood, ``total`` times the batch size is the
textbook's ``BCE(reduction="sum") + KLD``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._validation import check_positive_int
from .gaussian import _gaussian_kl
from .importance import _importance_log_weights
from .likelihoods import Likelihood, check_likelihood
from .model import VAEOutput

__all__ = ["ELBOLoss", "IWAELoss", "LossOutput"]


class LossOutput(NamedTuple):
    """What a loss returns; every value is in nats per example (mean over the batch).

    Attributes:
        total: the scalar to minimize (differentiable).
        reconstruction: :math:`-\\mathbb{E}_q \\log p(x \\mid z)`, a scalar.
        kl: :math:`\\mathrm{KL}(q(z \\mid x) \\| p(z))` in closed form, a scalar (not
            scaled by ``beta``, not clipped by free bits).
        kl_per_dim: the KL of each latent dimension, ``(latent_dim,)``.
    """

    total: Tensor
    reconstruction: Tensor
    kl: Tensor
    kl_per_dim: Tensor


def _check_non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite float >= 0, got {value}")
    return float(value)


def _check_pair(out: object, x: Tensor, likelihood: Likelihood) -> tuple[VAEOutput, Tensor]:
    """Check ``out`` and ``x`` match; returns ``x`` in the logits' dtype."""
    if not isinstance(out, VAEOutput):
        raise TypeError(
            f"out must be the VAEOutput a VAE's forward returns, got {type(out).__name__}"
        )
    likelihood.validate_target(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"x must have shape (batch, ...) with batch >= 1 examples, got shape {tuple(x.shape)}"
        )
    if x.device != out.logits.device:
        raise ValueError(f"x is on {x.device} but the model's output is on {out.logits.device}")
    if tuple(out.logits.shape[out.logits.ndim - x.ndim :]) != tuple(x.shape):
        raise ValueError(
            f"x has shape {tuple(x.shape)} but the model's output has shape "
            f"{tuple(out.logits.shape)}; pass the x the model was called with"
        )
    return out, x.to(out.logits.dtype)


class ELBOLoss(nn.Module):
    r"""The negative evidence lower bound, with optional :math:`\beta` and free bits.

    .. math::
        \text{total} = -\frac1B\sum_b \mathbb{E}_{q}\log p_\theta(x_b \mid z)
        + \beta \sum_j \max\!\left(\lambda,\ \frac1B\sum_b \mathrm{KL}_{bj}\right)

    where :math:`\mathrm{KL}_{bj}` is the closed-form KL of latent dimension :math:`j`
    for example :math:`b` and :math:`\lambda` is ``free_bits`` (0 by default: the plain
    ELBO). With several samples per example (``model(x, n_samples=k)``) the expectation
    is their average.

    Args:
        likelihood: :math:`p_\theta(x \mid z)`; default :class:`~torchvae.Bernoulli`.
        beta: weight of the KL term (:math:`\beta`-VAE; a schedule may change it between
            steps by setting ``loss.beta``).
        free_bits: :math:`\lambda`, nats per latent dimension below which the KL is not
            pushed down (Kingma et al., 2016).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(784, 400, 20), Decoder(20, 400, 784))
        >>> x = torch.rand(8, 784)
        >>> loss = ELBOLoss()(model(x), x)
        >>> bool(loss.total >= loss.kl >= 0)
        True
    """

    n_samples: int | None = None

    def __init__(
        self, likelihood: Likelihood | None = None, beta: float = 1.0, free_bits: float = 0.0
    ) -> None:
        super().__init__()
        self.likelihood = check_likelihood(likelihood)
        self.beta = beta
        self.free_bits = _check_non_negative(free_bits, "free_bits")

    @property
    def beta(self) -> float:
        """The KL weight :math:`\\beta` (finite, >= 0)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_non_negative(value, "beta")

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss and its parts.

        Args:
            out: what ``model(x)`` returned.
            x: the data the model was called with, ``(batch, ...)``.
        """
        out, x = _check_pair(out, x, self.likelihood)
        reconstruction = self.likelihood._mean_nll(out.logits, x)
        kl_per_dim = _gaussian_kl(out.mean, out.log_var).mean(0)
        kl = kl_per_dim.sum()
        penalty = kl_per_dim.clamp_min(self.free_bits).sum() if self.free_bits > 0 else kl
        total = reconstruction + (penalty if self._beta == 1.0 else self._beta * penalty)
        return LossOutput(total, reconstruction, kl, kl_per_dim)

    def extra_repr(self) -> str:
        return f"beta={self._beta:g}, free_bits={self.free_bits:g}"


class IWAELoss(nn.Module):
    r"""The negative importance-weighted bound of Burda et al. (2016) as a training objective.

    .. math::
        \text{total} = -\frac1B\sum_b \log \frac1k \sum_{i=1}^k
        \frac{p_\theta(x_b \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x_b)},\qquad
        z_i \sim q_\phi(z \mid x_b)

    It is never looser than the ELBO and tightens as ``k`` grows. The model must be
    called with ``n_samples=k`` (the Trainer reads ``loss.n_samples`` and does so).

    Args:
        k: importance samples per example.
        likelihood: :math:`p_\theta(x \mid z)`; default :class:`~torchvae.Bernoulli`.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(784, 400, 20), Decoder(20, 400, 784))
        >>> x = torch.rand(8, 784)
        >>> loss = IWAELoss(k=5)(model(x, n_samples=5), x)
        >>> loss.total.shape
        torch.Size([])
    """

    def __init__(self, k: int = 5, likelihood: Likelihood | None = None) -> None:
        super().__init__()
        self.n_samples = check_positive_int(k, "k")
        self.likelihood = check_likelihood(likelihood)

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss; ``out`` must come from ``model(x, n_samples=k)``."""
        out, x = _check_pair(out, x, self.likelihood)
        if out.z.ndim != 3:
            raise ValueError(
                f"IWAELoss needs several samples per example: call model(x, n_samples="
                f"{self.n_samples}); got z of shape {tuple(out.z.shape)}"
            )
        log_w, log_px_z = _importance_log_weights(out, x, self.likelihood)
        bound = torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
        kl_per_dim = _gaussian_kl(out.mean, out.log_var).mean(0)
        return LossOutput(-bound.mean(), -log_px_z.mean(), kl_per_dim.sum(), kl_per_dim)

    def extra_repr(self) -> str:
        return f"k={self.n_samples}"
