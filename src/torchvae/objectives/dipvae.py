r"""DIP-VAE (Kumar et al., 2018): the covariance of the codes pulled towards the identity.

The prior :math:`\mathcal{N}(0, I)` has independent, unit-variance dimensions; DIP-VAE
("disentangled inferred prior") asks the same of the aggregate posterior by matching its
covariance, on each batch, to the identity:

.. math::
    \text{penalty}(\Sigma) = \lambda_{od} \sum_{i \neq j} \Sigma_{ij}^2
    + \lambda_d \sum_i \left(\Sigma_{ii} - 1\right)^2.

- **DIP-VAE-I** uses the covariance of the posterior means,
  :math:`\Sigma = \operatorname{Cov}_{p(x)}[\mu_\phi(x)]`;
- **DIP-VAE-II** that of the aggregate posterior itself, for the diagonal Gaussian
  :math:`\Sigma = \operatorname{Cov}_{q(z)}[z] = \mathbb{E}_{p(x)}\!\left[
  \operatorname{diag}\sigma^2_\phi(x)\right] + \operatorname{Cov}_{p(x)}[\mu_\phi(x)]`.

Both are computed on the batch, with the biased (:math:`1/B`) covariance.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .._validation import check_floating
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ._objective import bound_parts, check_weight, gaussian_posterior
from .losses import LossOutput

__all__ = ["DIPKind", "DIPVAELoss", "dip_covariance"]

DIPKind = Literal["i", "ii"]
"""DIP-VAE-I (``"i"``, the covariance of the means) or II (``"ii"``, of the codes)."""


def dip_covariance(mean: Tensor, log_var: Tensor, kind: DIPKind = "i") -> Tensor:
    r"""The batch covariance DIP-VAE matches to the identity, ``(latent_dim, latent_dim)``.

    Args:
        mean: :math:`\mu_\phi(x)` of a batch, ``(batch, latent_dim)``.
        log_var: :math:`\log\sigma^2_\phi(x)`, the same shape (used by ``"ii"`` only).
        kind: ``"i"`` for :math:`\operatorname{Cov}[\mu]`, ``"ii"`` for
            :math:`\operatorname{Cov}[\mu] + \mathbb{E}[\operatorname{diag}\sigma^2]`.

    Example:
        >>> mean = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> dip_covariance(mean, torch.zeros(2, 2), "ii")
        tensor([[2., 0.],
                [0., 1.]])
    """
    if kind not in ("i", "ii"):
        raise ValueError(f"kind must be 'i' or 'ii', got {kind!r}")
    mean, log_var = check_floating(mean, "mean"), check_floating(log_var, "log_var")
    if mean.ndim != 2 or mean.shape != log_var.shape:
        raise ValueError(
            f"mean and log_var must have the same shape (batch, latent_dim), got "
            f"{tuple(mean.shape)} and {tuple(log_var.shape)}"
        )
    centred = mean - mean.mean(0)
    cov = centred.T @ centred / mean.shape[0]
    if kind == "ii":
        cov = cov + torch.diag(log_var.exp().mean(0))
    return cov


class DIPVAELoss(nn.Module):
    r"""DIP-VAE I or II: the negative ELBO plus the covariance penalty.

    .. math::
        \text{total} = -\frac1B\sum_b \log p_\theta(x_b \mid z_b) + \frac1B\sum_b \mathrm{KL}_b
        + \lambda_{od} \sum_{i \neq j} \Sigma_{ij}^2 + \lambda_d \sum_i (\Sigma_{ii} - 1)^2

    with :math:`\Sigma` of :func:`dip_covariance` on the batch. Needs the diagonal Gaussian
    posterior and the standard normal prior (the model's defaults), and at least 2
    examples per batch. ``LossOutput.terms`` holds ``"dip_off_diagonal"`` and
    ``"dip_diagonal"``, the two sums before weighting.

    Args:
        kind: ``"i"`` or ``"ii"``.
        lambda_od: :math:`\lambda_{od}`, the weight of the off-diagonal entries.
        lambda_d: :math:`\lambda_d`, the weight of the diagonal; default the paper's choice,
            :math:`10\lambda_{od}` for DIP-VAE-I and :math:`\lambda_{od}` for DIP-VAE-II.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> x = torch.rand(32, 16)
        >>> loss = DIPVAELoss("ii", lambda_od=5.0)
        >>> loss.lambda_d, sorted(loss(model(x), x).terms)
        (5.0, ['dip_diagonal', 'dip_off_diagonal'])
    """

    def __init__(
        self,
        kind: DIPKind = "i",
        lambda_od: float = 10.0,
        lambda_d: float | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("i", "ii"):
            raise ValueError(f"kind must be 'i' (DIP-VAE-I) or 'ii' (DIP-VAE-II), got {kind!r}")
        self.kind: DIPKind = kind
        self.lambda_od = check_weight(lambda_od, "lambda_od")
        default = 10.0 * self.lambda_od if kind == "i" else self.lambda_od
        self.lambda_d = default if lambda_d is None else check_weight(lambda_d, "lambda_d")
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss and its parts (``out = model(x)``)."""
        parts = bound_parts(out, x, self.likelihood, "DIPVAELoss")
        _, mean, log_var = gaussian_posterior(out, "DIPVAELoss")
        if mean.shape[0] < 2:
            raise ValueError(
                "DIPVAELoss needs at least 2 examples per batch for a covariance (drop the "
                "last batch, e.g. TensorLoader(..., drop_last=True))"
            )
        cov = dip_covariance(mean, log_var, self.kind)
        diagonal = cov.diagonal()
        off = (cov - torch.diag(diagonal)).square().sum()
        on = (diagonal - 1).square().sum()
        total = parts.reconstruction + parts.kl + self.lambda_od * off + self.lambda_d * on
        logged = {"dip_off_diagonal": off.detach(), "dip_diagonal": on.detach()}
        return LossOutput(
            total, parts.reconstruction, parts.kl, parts.kl_per_dim, parts.kl_exact, logged
        )

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, lambda_od={self.lambda_od:g}, lambda_d={self.lambda_d:g}"
