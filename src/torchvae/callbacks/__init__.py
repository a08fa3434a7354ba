r"""Callbacks: everything optional in training hangs off the :class:`~torchvae.Trainer`.

A callback subclasses :class:`Callback` and overrides the hooks it needs; the trainer calls
a callback only for the hooks it overrides (so a callback without a per-step hook adds
nothing to a step). Hooks receive the trainer first and may read ``trainer.model``,
``trainer.loss``, ``trainer.optimizer``, ``trainer.epoch`` (epochs done),
``trainer.global_step``, ``trainer.metrics`` (the last epoch's metrics: ``loss``,
``reconstruction``, ``kl``, ``beta``, ``lr``, ``time``, and ``val_*`` with validation
data) and set ``trainer.should_stop``. Callbacks with state (:meth:`Callback.state_dict`)
are saved in checkpoints and restored on resume. :class:`ModelCheckpoint` always runs
last, so that it saves the other callbacks' state of the same epoch.
"""

from __future__ import annotations

from ._base import HOOKS, Callback, StepOutput, TrainerView
from ._beta import BetaSchedule
from ._checkpoint import ModelCheckpoint
from ._early_stopping import EarlyStopping
from ._progress import ProgressBar
from ._tensorboard import TensorBoardLogger, image_grid
from ._trackers import MLflowLogger, WandbLogger

__all__ = [
    "HOOKS",
    "BetaSchedule",
    "Callback",
    "EarlyStopping",
    "MLflowLogger",
    "ModelCheckpoint",
    "ProgressBar",
    "StepOutput",
    "TensorBoardLogger",
    "TrainerView",
    "WandbLogger",
    "image_grid",
]
