"""Training objectives and the importance-weighted log-likelihood."""

from __future__ import annotations

from .importance import bits_per_dim, importance_log_weights, log_likelihood
from .losses import ELBOLoss, IWAELoss, LossOutput

__all__ = [
    "ELBOLoss",
    "IWAELoss",
    "LossOutput",
    "bits_per_dim",
    "importance_log_weights",
    "log_likelihood",
]
