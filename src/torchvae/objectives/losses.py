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
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ._terms import check_output, model_likelihood, terms

__all__ = ["ELBOLoss", "IWAELoss", "LossOutput"]


class LossOutput(NamedTuple):
    """What a loss returns; every value is in nats per example (mean over the batch).

    Attributes:
        total: the scalar to minimize (differentiable).
        reconstruction: :math:`-\\mathbb{E}_q \\log p(x \\mid z)`, a scalar.
        kl: :math:`\\mathrm{KL}(q(z \\mid x) \\| p(z))`, a scalar (not scaled by ``beta``,
            not clipped by free bits): closed form where the model has one, otherwise the
            Monte Carlo estimate on the same samples (see ``kl_exact``).
        kl_per_dim: the KL of each latent dimension, ``(latent_dim,)``, where the posterior
            and the prior factorize over dimensions; ``None`` otherwise.
        kl_exact: whether ``kl`` is in closed form.
        terms: further scalars of the objective to log, by name (e.g. a total correlation);
            the Trainer averages them per epoch.
        aux: losses for other parameter groups, by the name of the group (e.g. a
            discriminator's); see :meth:`~torchvae.Trainer` on objectives with several
            optimizers. Each must be computed on detached inputs.
    """

    total: Tensor
    reconstruction: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None
    kl_exact: bool = True
    terms: Mapping[str, Tensor] | None = None
    aux: Mapping[str, Tensor] | None = None


def _check_non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite float >= 0, got {value}")
    return float(value)


class ELBOLoss(nn.Module):
    r"""The negative evidence lower bound, with optional :math:`\beta` and free bits.

    .. math::
        \text{total} = -\frac1B\sum_b \mathbb{E}_{q}\log p_\theta(x_b \mid z)
        + \beta \sum_j \max\!\left(\lambda,\ \frac1B\sum_b \mathrm{KL}_{bj}\right)

    where :math:`\mathrm{KL}_{bj}` is the closed-form KL of latent dimension :math:`j`
    for example :math:`b` and :math:`\lambda` is ``free_bits`` (0 by default: the plain
    ELBO). With several samples per example (``model(x, n_samples=k)``) the expectation
    is their average. Where the model's prior and posterior have no closed-form KL (a
    mixture, VampPrior or flow), the KL is the model's Monte Carlo estimate
    :math:`\log q(z \mid x) - \log p(z)` on the same samples, and free bits, which need a
    KL per dimension, are refused.

    The likelihood and the prior are the model's (``VAE(..., likelihood=...)``). For a
    user-written model whose output carries only ``(logits, mean, log_var, z)``, the loss
    scores it with ``likelihood`` (default Bernoulli) and the standard normal prior.

    Args:
        likelihood: only for user-written models; given with a torchvae model, it must be
            the model's own (otherwise a ``ValueError`` says what to write instead).
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
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)
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
        out = check_output(out, x)
        likelihood = model_likelihood(out.likelihood, self.likelihood, "ELBOLoss")
        t = terms(out, x, likelihood, weights=False)
        reconstruction = -t.log_px_z.mean()
        kl_per_dim = None if t.kl_per_dim is None else t.kl_per_dim.mean(0)
        kl = t.kl.mean() if kl_per_dim is None else kl_per_dim.sum()
        penalty = kl
        if self.free_bits > 0:
            if kl_per_dim is None:
                raise ValueError(
                    "free_bits needs the KL of each latent dimension, which this model's "
                    "prior and posterior do not have in closed form (its KL is a Monte Carlo "
                    "estimate); use free_bits=0, or the standard normal prior with the "
                    "diagonal Gaussian posterior"
                )
            penalty = kl_per_dim.clamp_min(self.free_bits).sum()
        total = reconstruction + (penalty if self._beta == 1.0 else self._beta * penalty)
        return LossOutput(total, reconstruction, kl, kl_per_dim, t.exact)

    def extra_repr(self) -> str:
        return f"beta={self._beta:g}, free_bits={self.free_bits:g}"


class IWAELoss(nn.Module):
    r"""The negative importance-weighted bound of Burda et al. (2016) as a training objective.

    .. math::
        \text{total} = -\frac1B\sum_b \log \frac1k \sum_{i=1}^k
        \frac{p_\theta(x_b \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x_b)},\qquad
        z_i \sim q_\phi(z \mid x_b)

    It is never looser than the ELBO and tightens as ``k`` grows. The model must be
    called with ``n_samples=k`` (the Trainer reads ``loss.n_samples`` and does so). The
    prior, posterior and likelihood are the model's.

    Args:
        k: importance samples per example.
        likelihood: only for user-written models (see :class:`ELBOLoss`).

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
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss; ``out`` must come from ``model(x, n_samples=k)``."""
        out = check_output(out, x)
        k = self.n_samples
        if out.z.ndim != 3 or out.z.shape[0] != k:
            got = f"z of shape {tuple(out.z.shape)}"
            if out.z.ndim == 3:
                got = f"{out.z.shape[0]} samples per example ({got})"
            raise ValueError(
                f"IWAELoss(k={k}) needs {k} samples per example: call model(x, n_samples={k}); "
                f"got {got}"
            )
        likelihood = model_likelihood(out.likelihood, self.likelihood, "IWAELoss")
        t = terms(out, x, likelihood, weights=True)
        assert t.log_qz is not None and t.log_pz is not None
        log_w = t.log_px_z + t.log_pz - t.log_qz
        bound = torch.logsumexp(log_w, dim=0) - math.log(k)
        kl_per_dim = None if t.kl_per_dim is None else t.kl_per_dim.mean(0)
        kl = t.kl.mean() if kl_per_dim is None else kl_per_dim.sum()
        return LossOutput(-bound.mean(), -t.log_px_z.mean(), kl, kl_per_dim, t.exact)

    def extra_repr(self) -> str:
        return f"k={self.n_samples}"
