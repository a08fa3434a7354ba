"""Set the KL weight from a schedule before each step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from ..schedules import Schedule
from ._base import Callback, TrainerView

__all__ = ["BetaSchedule"]


class BetaSchedule(Callback):
    r"""Set ``loss.beta`` before each step from a schedule of the global step.

    Args:
        schedule: a :class:`~torchvae.schedules.Schedule` (``Linear(steps=...)`` for KL
            warm-up, ``Cyclical(period=...)``) or any callable ``step -> beta``.

    Example:
        >>> from torchvae.schedules import Linear
        >>> callback = BetaSchedule(Linear(steps=1000))
    """

    def __init__(self, schedule: Schedule | Callable[[int], float]) -> None:
        if not callable(schedule):
            raise TypeError(
                f"schedule must be callable (step -> beta), got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.beta: float | None = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        if not hasattr(trainer.loss, "beta"):
            raise TypeError(
                f"BetaSchedule needs a loss with a beta, got {type(trainer.loss).__name__}"
            )

    def on_train_batch_start(self, trainer: TrainerView, x: Tensor) -> None:
        self.beta = float(self.schedule(trainer.global_step))
        setattr(trainer.loss, "beta", self.beta)  # noqa: B010 (nn.Module's type hides it)

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.beta = state["beta"]
