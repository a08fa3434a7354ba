"""The training loop and its parts: precision, processes, faults, state."""

from __future__ import annotations

from .trainer import NonFiniteLossError, ResumeWarning, StepOutput, Trainer

__all__ = ["NonFiniteLossError", "ResumeWarning", "StepOutput", "Trainer"]
