"""Ex-post samplers: densities fitted to a trained model's aggregate posterior."""

from __future__ import annotations

from .fit import aggregate_posterior, fit_gmm_sampler
from .gmm import Covariance, GaussianMixtureSampler, LatentSampler

__all__ = [
    "Covariance",
    "GaussianMixtureSampler",
    "LatentSampler",
    "aggregate_posterior",
    "fit_gmm_sampler",
]
