"""Training objectives and the importance-weighted log-likelihood."""

from __future__ import annotations

from . import aggregate
from .capacity import CapacityLoss
from .dipvae import DIPVAELoss
from .factorvae import FactorVAELoss
from .importance import bits_per_dim, importance_log_weights, log_likelihood
from .iwae import CIWAELoss, DReGIWAELoss, MIWAELoss, PIWAELoss
from .losses import ELBOLoss, IWAELoss, LossOutput
from .mmd import InfoVAELoss, WAELoss
from .tcvae import BetaTCVAELoss, kl_decomposition
from .vq import CodePriorLoss, VQLoss

__all__ = [
    "BetaTCVAELoss",
    "CIWAELoss",
    "CapacityLoss",
    "CodePriorLoss",
    "DIPVAELoss",
    "DReGIWAELoss",
    "ELBOLoss",
    "FactorVAELoss",
    "IWAELoss",
    "InfoVAELoss",
    "LossOutput",
    "MIWAELoss",
    "PIWAELoss",
    "VQLoss",
    "WAELoss",
    "aggregate",
    "bits_per_dim",
    "importance_log_weights",
    "kl_decomposition",
    "log_likelihood",
]
