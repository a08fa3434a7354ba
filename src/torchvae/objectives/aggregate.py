r"""The aggregate posterior :math:`q(z) = \frac1N \sum_n q(z \mid x_n)`, estimated on a minibatch.

Objectives that penalize the statistics of :math:`q(z)` rather than of each
:math:`q(z \mid x)` (the total correlation of β-TCVAE, the index-code mutual information)
need :math:`\log q(z_i)` at each sample :math:`z_i \sim q(z \mid x_i)` of a batch of
:math:`B` examples drawn from a data set of :math:`N`. Both estimators of Chen et al.
(2018) are weighted sums over the batch of the diagonal Gaussian densities
:math:`q(z_i \mid x_j)`, which :func:`pairwise_log_density` computes for every pair at once:

.. math::
    \log \hat q(z_i) = \log \sum_{j=1}^{B} w_{ij}\, q(z_i \mid x_j), \qquad
    \log \hat q(z_{ik}) = \log \sum_{j=1}^{B} w_{ij}\, q(z_{ik} \mid x_j)

for the joint and for each latent dimension :math:`k`, with the weights

- **minibatch-weighted sampling** (``"mws"``): :math:`w_{ij} = 1/(NB)` for every pair,
  as the paper writes it. The row sums to :math:`1/N`, not 1: next to the plain batch
  average :math:`\frac1B\sum_j q(z_i \mid x_j)` every log-estimate is lower by the
  constant :math:`\log N`, which moves no gradient but shifts the values (with
  :math:`d` latent dimensions, the MI reads :math:`\log N` higher, the total correlation
  :math:`(d - 1)\log N` higher and the dimension-wise KL :math:`d \log N` lower than with
  that average). Use it for training, not for reading the values;
- **minibatch-stratified sampling** (``"mss"``): with :math:`M = B - 1` other examples,
  :math:`w_{ii} = 1/N` for the example's own density, :math:`w_{ij} = (N - M)/(NM)` for
  one other example (here :math:`j = i + 1 \bmod B`) and :math:`w_{ij} = 1/M` for the
  remaining :math:`M - 1`. The weights of a row sum to 1, and when the batch is a uniform
  draw without replacement, :math:`\hat q(z_i)` is an unbiased estimate of :math:`q(z_i)`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from .._validation import check_finite, check_floating, check_positive_int

__all__ = [
    "AggregateDensities",
    "Estimator",
    "aggregate_log_densities",
    "log_importance_weights",
    "pairwise_log_density",
]

Estimator = Literal["mws", "mss"]
"""The estimators of :math:`q(z)`: minibatch-weighted or minibatch-stratified sampling."""
_LOG_2PI = math.log(2.0 * math.pi)


class AggregateDensities(NamedTuple):
    r"""Log-densities at the samples of a batch, each row one sample :math:`z_i`.

    Attributes:
        log_qz_x: :math:`\log q(z_i \mid x_i)`, ``(batch,)``.
        log_qz: :math:`\log \hat q(z_i)`, ``(batch,)``.
        log_qz_dims: :math:`\log \hat q(z_{ik})` for each dimension, ``(batch, latent_dim)``;
            their sum over dimensions is :math:`\log \prod_k \hat q(z_{ik})`.
    """

    log_qz_x: Tensor
    log_qz: Tensor
    log_qz_dims: Tensor


def _check_params(z: object, mean: object, log_var: object) -> tuple[Tensor, Tensor, Tensor]:
    tensors = [check_floating(v, n) for v, n in ((z, "z"), (mean, "mean"), (log_var, "log_var"))]
    z, mean, log_var = tensors
    if mean.ndim != 2 or mean.shape != log_var.shape:
        raise ValueError(
            f"mean and log_var must have the same shape (batch, latent_dim), got "
            f"{tuple(mean.shape)} and {tuple(log_var.shape)}"
        )
    if z.ndim != 2 or z.shape[1] != mean.shape[1]:
        raise ValueError(
            f"z must have shape (n, latent_dim) with latent_dim = {mean.shape[1]}, got "
            f"{tuple(z.shape)}"
        )
    if not (z.device == mean.device == log_var.device):
        raise ValueError(
            f"z, mean and log_var must be on one device, got {z.device}, {mean.device} and "
            f"{log_var.device}"
        )
    for value, name in ((z, "z"), (mean, "mean"), (log_var, "log_var")):
        check_finite(value, name)
    return z, mean, log_var


def pairwise_log_density(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    r"""The log-density of every sample under every example's diagonal Gaussian, per dimension.

    .. math::
        L_{ijk} = \log \mathcal{N}\!\left(z_{ik};\ \mu_{jk},\ \sigma^2_{jk}\right)
        = -\tfrac12\left[\log 2\pi + \log\sigma^2_{jk}
          + \frac{(z_{ik} - \mu_{jk})^2}{\sigma^2_{jk}}\right]

    Args:
        z: samples ``(n, latent_dim)``.
        mean: :math:`\mu` of the examples' posteriors, ``(batch, latent_dim)``.
        log_var: :math:`\log\sigma^2`, ``(batch, latent_dim)``.

    Returns:
        ``(n, batch, latent_dim)``, differentiable in all three inputs. Summed over the last
        dimension it is :math:`\log q(z_i \mid x_j)`.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: the shapes or devices do not fit, or a value is NaN/inf.

    Example:
        >>> z, mean, log_var = torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(4, 2)
        >>> pairwise_log_density(z, mean, log_var).shape
        torch.Size([3, 4, 2])
    """
    z, mean, log_var = _check_params(z, mean, log_var)
    return _pairwise(z, mean, log_var)


def _pairwise(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    scaled = (z.unsqueeze(1) - mean.unsqueeze(0)) * torch.exp(-0.5 * log_var).unsqueeze(0)
    return -0.5 * (scaled.square() + log_var.unsqueeze(0) + _LOG_2PI)


def log_importance_weights(
    batch_size: int,
    dataset_size: int,
    estimator: Estimator = "mss",
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The log-weights :math:`\log w_{ij}` of an estimator (see the module notes), ``(B, B)``.

    Args:
        batch_size: :math:`B`; at least 2 for ``"mss"``.
        dataset_size: :math:`N \geq B`, the number of examples the batch is drawn from.
        estimator: ``"mws"`` or ``"mss"``.
        dtype: of the result.
        device: of the result.

    Raises:
        ValueError: an unknown estimator, :math:`N < B`, or :math:`B < 2` for ``"mss"``.

    Example:
        >>> log_importance_weights(3, 10, "mss").exp()
        tensor([[0.1000, 0.4000, 0.5000],
                [0.5000, 0.1000, 0.4000],
                [0.4000, 0.5000, 0.1000]])
    """
    b = check_positive_int(batch_size, "batch_size")
    n = check_positive_int(dataset_size, "dataset_size")
    if estimator not in ("mws", "mss"):
        raise ValueError(f"estimator must be 'mws' or 'mss', got {estimator!r}")
    if n < b:
        raise ValueError(
            f"dataset_size (N = {n}) must be at least the batch size ({b}): the batch is "
            f"drawn from the N training examples; pass the size of the training set"
        )
    if estimator == "mws":
        return torch.full((b, b), -math.log(n * b), dtype=dtype, device=device)
    if b < 2:
        raise ValueError(
            "the minibatch-stratified estimator needs at least 2 examples per batch, got 1 "
            "(drop the last batch, e.g. TensorLoader(..., drop_last=True), or use 'mws')"
        )
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % b] = (n - m) / (n * m)
    return w.log().to(dtype=dtype, device=device)


def aggregate_log_densities(
    z: Tensor,
    mean: Tensor,
    log_var: Tensor,
    dataset_size: int,
    estimator: Estimator = "mss",
) -> AggregateDensities:
    r""":math:`\log q(z_i \mid x_i)`, :math:`\log\hat q(z_i)` and :math:`\log\hat q(z_{ik})`
    for a batch whose sample :math:`z_i` was drawn from example :math:`i`'s posterior.

    Args:
        z: one sample per example, ``(batch, latent_dim)``.
        mean: the posteriors' :math:`\mu`, ``(batch, latent_dim)``.
        log_var: their :math:`\log\sigma^2`, ``(batch, latent_dim)``.
        dataset_size: :math:`N`, the size of the data set the batch was drawn from.
        estimator: ``"mss"`` (minibatch-stratified, the default) or ``"mws"``
            (minibatch-weighted); see the module notes.

    Returns:
        An :class:`AggregateDensities`, differentiable in the inputs.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: shapes differ (``z`` must have one row per example), :math:`N` is below
            the batch size, or the estimator is unknown.

    Example:
        >>> d = aggregate_log_densities(torch.randn(8, 3), torch.zeros(8, 3),
        ...                             torch.zeros(8, 3), dataset_size=1000)
        >>> d.log_qz.shape, d.log_qz_dims.shape
        (torch.Size([8]), torch.Size([8, 3]))
    """
    z, mean, log_var = _check_params(z, mean, log_var)
    if z.shape[0] != mean.shape[0]:
        raise ValueError(
            f"z must hold one sample per example, (batch, latent_dim) = {tuple(mean.shape)}, "
            f"got {tuple(z.shape)}"
        )
    log_w = log_importance_weights(
        z.shape[0], dataset_size, estimator, dtype=z.dtype, device=z.device
    )
    pairs = _pairwise(z, mean, log_var)  # (B, B, d)
    log_qz_x = pairs.diagonal(dim1=0, dim2=1).sum(0)
    log_qz = torch.logsumexp(log_w + pairs.sum(-1), dim=1)
    log_qz_dims = torch.logsumexp(log_w.unsqueeze(-1) + pairs, dim=1)
    return AggregateDensities(log_qz_x, log_qz, log_qz_dims)
