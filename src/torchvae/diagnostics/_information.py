"""The mutual information estimate of the aggregate posterior."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..gaussian import GaussianParams
from ..posteriors import DiagonalGaussian, Posterior

__all__ = ["estimate_mutual_information"]


# Rows of z scored against every stored posterior at once in the MI estimate.
_MI_CHUNK_ELEMENTS = 1 << 22


def _log_aggregate_gaussian(z: Tensor, q: GaussianParams) -> Tensor:
    r""":math:`\log \frac1M \sum_j \mathcal{N}(z_i; \mu_j, \sigma_j^2)` for each row of ``z``."""
    mean, log_var = q.mean, q.log_var
    m, d = mean.shape
    # log N(z; mu_j, var_j) for all j at once as matrix products:
    # -1/2 [ z^2 . (1/var_j) - 2 z . (mu_j/var_j) + sum(mu_j^2/var_j + log var_j + log 2pi) ]
    precision = torch.exp(-log_var)
    scaled_mean = mean * precision
    const = (mean * scaled_mean + log_var).sum(1) + d * math.log(2 * math.pi)
    rows = max(1, _MI_CHUNK_ELEMENTS // m)
    return torch.cat(
        [
            torch.logsumexp(
                -0.5 * (zc.square() @ precision.T - 2 * zc @ scaled_mean.T + const), dim=1
            )
            for zc in torch.split(z, rows)
        ]
    ) - math.log(m)


def _log_aggregate(z: Tensor, q: GaussianParams, posterior: Posterior) -> Tensor:
    r"""The same for any posterior, from its density at every pair, in bounded chunks."""
    m = q.mean.shape[0]
    rows = max(1, _MI_CHUNK_ELEMENTS // (64 * m))  # room for a flow's hidden layers
    return torch.cat(
        [
            torch.logsumexp(posterior.log_prob(zc[:, None, :], q).double(), dim=1)
            for zc in torch.split(z, rows)
        ]
    ) - math.log(m)


def estimate_mutual_information(
    q: GaussianParams,
    n_samples: int,
    generator: torch.Generator | None,
    posterior: Posterior | None = None,
) -> float:
    """The MI estimate on the stored posteriors."""
    gaussian = posterior is None or isinstance(posterior, DiagonalGaussian)
    mean, log_var = (q.mean.double(), q.log_var.double()) if gaussian else (q.mean, q.log_var)
    m, d = mean.shape
    params = GaussianParams(mean, log_var)
    if gaussian:
        # Noise drawn on the generator's own device, so a CPU generator gives the same
        # estimate for a model on any device.
        eps = torch.randn(
            (n_samples, m, d),
            generator=generator,
            dtype=mean.dtype,
            device=mean.device if generator is None else generator.device,
        ).to(mean.device)
    if gaussian:
        z = mean + params.std * eps
        log_own = params.log_prob(z).reshape(-1)
        log_aggregate = _log_aggregate_gaussian(z.reshape(-1, d), params)
    else:
        assert posterior is not None
        same = generator is None or generator.device == mean.device
        z, log_q = posterior.rsample_and_log_prob(params, n_samples, generator if same else None)
        log_own = log_q.reshape(-1).double()
        log_aggregate = _log_aggregate(z.reshape(-1, d), params, posterior)
    mi = float((log_own - log_aggregate).mean())
    if math.isnan(mi):
        raise ValueError(
            f"data gives posteriors too extreme for the mutual information estimate "
            f"(largest |mean| {float(mean.abs().max()):g}, log_var in "
            f"[{float(log_var.min()):g}, {float(log_var.max()):g}]): scale the data"
        )
    return mi
