"""The training loop and its parts: precision, processes, faults, state."""

from __future__ import annotations

from .trainer import NonFiniteLossError, ResumeWarning, StepOutput, Trainer
from .vq_fit import code_dataset, fit_code_prior

__all__ = [
    "NonFiniteLossError",
    "ResumeWarning",
    "StepOutput",
    "Trainer",
    "code_dataset",
    "fit_code_prior",
]
