r"""β-TCVAE (Chen et al., 2018): the KL term split into three, and the total correlation weighted.

Averaged over the data, the KL of the ELBO is the sum of the *index-code mutual
information* between the example and its code, the *total correlation* of the aggregate
posterior :math:`q(z) = \frac1N\sum_n q(z \mid x_n)`, and the *dimension-wise KL* of its
marginals to the prior:

.. math::
    \mathbb{E}_{p(x)}\,\mathrm{KL}\!\left(q(z \mid x)\,\|\,p(z)\right)
    = \underbrace{\mathrm{KL}\!\left(q(z, x)\,\|\,q(z)\,p(x)\right)}_{I_q(z;\,x)}
    + \underbrace{\mathrm{KL}\!\Big(q(z)\,\Big\|\,\prod_k q(z_k)\Big)}_{\text{TC}}
    + \underbrace{\sum_k \mathrm{KL}\!\left(q(z_k)\,\|\,p(z_k)\right)}_{\text{dimension-wise KL}}

for a factorized prior. A large weight on the total correlation alone pushes the code's
dimensions towards independence without also starving the code of information about
:math:`x`, which is what a large :math:`\beta` on the whole KL does.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from ..gaussian import standard_normal_log_prob
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ._objective import bound_parts, check_weight, gaussian_posterior
from .aggregate import Estimator, aggregate_log_densities
from .losses import LossOutput

__all__ = ["BetaTCVAELoss", "KLDecomposition", "kl_decomposition"]


class KLDecomposition(NamedTuple):
    """The three parts of the KL for one batch, each a scalar in nats per example."""

    mi: Tensor
    """Index-code mutual information :math:`I_q(z; x)`."""
    tc: Tensor
    r"""Total correlation :math:`\mathrm{KL}(q(z) \| \prod_k q(z_k))`."""
    dim_kl: Tensor
    r"""Dimension-wise KL :math:`\sum_k \mathrm{KL}(q(z_k) \| p(z_k))`."""


def kl_decomposition(
    out: VAEOutput, dataset_size: int, estimator: Estimator = "mss"
) -> KLDecomposition:
    r"""Estimate the index-code MI, the total correlation and the dimension-wise KL on a batch.

    With one sample :math:`z_i \sim q(z \mid x_i)` per example and the estimates
    :math:`\log\hat q(z_i)`, :math:`\log\hat q(z_{ik})` of
    :func:`~torchvae.objectives.aggregate.aggregate_log_densities`:

    .. math::
        \widehat{I} = \frac1B\sum_i \left[\log q(z_i \mid x_i) - \log\hat q(z_i)\right],\quad
        \widehat{\mathrm{TC}} = \frac1B\sum_i \Big[\log\hat q(z_i)
            - \sum_k \log\hat q(z_{ik})\Big],

    .. math::
        \widehat{\mathrm{KL}}_{\text{dim}} = \frac1B\sum_i \sum_k
            \left[\log\hat q(z_{ik}) - \log p(z_{ik})\right].

    The three add up to :math:`\frac1B\sum_i[\log q(z_i \mid x_i) - \log p(z_i)]`, the
    Monte Carlo estimate of the KL on the same samples, whatever the estimator; each part
    alone is an estimate with the estimator's bias.

    Args:
        out: ``model(x)`` of a model with the diagonal Gaussian posterior and the standard
            normal prior (or a user-written model's ``(logits, mean, log_var, z)``).
        dataset_size: :math:`N`, the size of the training set the batch comes from.
        estimator: ``"mss"`` (minibatch-stratified) or ``"mws"`` (minibatch-weighted).

    Raises:
        ValueError: another posterior or prior, several samples per example, :math:`N`
            below the batch size, or fewer than 2 examples for ``"mss"``.

    Example:
        >>> import torch
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> parts = kl_decomposition(model(torch.rand(32, 16)), dataset_size=1000)
        >>> [t.shape for t in parts]
        [torch.Size([]), torch.Size([]), torch.Size([])]
    """
    if not isinstance(out, VAEOutput):
        raise TypeError(f"out must be the VAEOutput of model(x), got {type(out).__name__}")
    z, mean, log_var = gaussian_posterior(out, "kl_decomposition")
    d = aggregate_log_densities(z, mean, log_var, dataset_size, estimator)
    log_prod = d.log_qz_dims.sum(-1)
    return KLDecomposition(
        (d.log_qz_x - d.log_qz).mean(),
        (d.log_qz - log_prod).mean(),
        (log_prod - standard_normal_log_prob(z)).mean(),
    )


class BetaTCVAELoss(nn.Module):
    r"""The β-TCVAE objective of Chen et al. (2018): each part of the KL with its own weight.

    .. math::
        \text{total} = -\frac1B\sum_b \log p_\theta(x_b \mid z_b)
        + \alpha\,\widehat{I}_q(z; x) + \beta\,\widehat{\mathrm{TC}}
        + \gamma\,\widehat{\mathrm{KL}}_{\text{dim}}

    with the three estimates of :func:`kl_decomposition` on the batch. With
    :math:`\alpha = \beta = \gamma = 1` it is the negative ELBO with the KL estimated on
    the samples; the paper's β-TCVAE keeps :math:`\alpha = \gamma = 1` and raises
    :math:`\beta`. ``LossOutput.kl`` is the closed-form KL (unweighted) and
    ``LossOutput.terms`` holds ``"mi"``, ``"tc"`` and ``"dim_kl"``.

    The estimates of :math:`q(z)` need the number of training examples :math:`N` the
    batches are drawn from, and every batch must have at least 2 examples for the
    stratified estimator (use ``drop_last=True`` when the data set size is not a
    multiple of the batch size). Needs the diagonal Gaussian posterior and the standard
    normal prior (the model's defaults); others are refused with a message. The step
    costs :math:`O(B^2 d)` on top of the ELBO's.

    Args:
        dataset_size: :math:`N`, the size of the training set.
        alpha: :math:`\alpha`, weight of the index-code mutual information.
        beta: :math:`\beta`, weight of the total correlation (a
            :class:`~torchvae.callbacks.BetaSchedule` may change it between steps).
        gamma: :math:`\gamma`, weight of the dimension-wise KL.
        estimator: ``"mss"`` (minibatch-stratified, the default) or ``"mws"``
            (minibatch-weighted), see :mod:`torchvae.objectives.aggregate`.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> import torch
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> x = torch.rand(32, 16)
        >>> out = BetaTCVAELoss(dataset_size=1000, beta=6.0)(model(x), x)
        >>> sorted(out.terms)
        ['dim_kl', 'mi', 'tc']
    """

    def __init__(
        self,
        dataset_size: int,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        estimator: Estimator = "mss",
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        if isinstance(dataset_size, bool) or not isinstance(dataset_size, int):
            raise TypeError(
                f"dataset_size must be an int (the number of training examples), got "
                f"{type(dataset_size).__name__}"
            )
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
        if estimator not in ("mws", "mss"):
            raise ValueError(f"estimator must be 'mws' or 'mss', got {estimator!r}")
        self.dataset_size = dataset_size
        self.estimator: Estimator = estimator
        self.alpha = check_weight(alpha, "alpha")
        self.beta = beta
        self.gamma = check_weight(gamma, "gamma")
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    @property
    def beta(self) -> float:
        """The weight :math:`\\beta` of the total correlation (finite, >= 0)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_weight(value, "beta")

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss and its parts (``out = model(x)``)."""
        parts = bound_parts(out, x, self.likelihood, "BetaTCVAELoss")
        mi, tc, dim_kl = kl_decomposition(out, self.dataset_size, self.estimator)
        total = parts.reconstruction + self.alpha * mi + self._beta * tc + self.gamma * dim_kl
        logged = {"mi": mi.detach(), "tc": tc.detach(), "dim_kl": dim_kl.detach()}
        return LossOutput(
            total, parts.reconstruction, parts.kl, parts.kl_per_dim, parts.kl_exact, logged
        )

    def extra_repr(self) -> str:
        return (
            f"dataset_size={self.dataset_size}, alpha={self.alpha:g}, beta={self._beta:g}, "
            f"gamma={self.gamma:g}, estimator={self.estimator!r}"
        )
