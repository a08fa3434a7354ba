r"""Train torchvae models with Lightning: a ``LightningModule`` around a model and its loss.

:class:`VAEModule` wraps any torchvae model (a :class:`~torchvae.VAE`, a
:class:`~torchvae.ConditionalVAE`, or any module whose output the loss takes) and any
torchvae objective (:class:`~torchvae.ELBOLoss` by default, :class:`~torchvae.IWAELoss`,
the disentangling objectives with their own parameter groups), so that Lightning's
``Trainer`` trains it with its loggers, strategies, callbacks and checkpoints:

.. code-block:: python

    import lightning as L
    from torchvae.lightning import VAEModule

    module = VAEModule(model, lr=1e-3)
    L.Trainer(max_epochs=10).fit(module, train_loader, val_loader)
    save_model(module.model, "vae.safetensors")

It logs ``loss``, ``reconstruction``, ``kl`` (and the objective's own ``terms``) per step
and epoch, and ``val_loss``, ``val_reconstruction``, ``val_kl`` and ``val_bits_per_dim``
(:math:`\text{loss} / (D \ln 2)`) per validation epoch. Batches are ``x`` or ``(x, y)``.
Its checkpoints also hold the random states, so that a run resumed with ``ckpt_path``
draws the noise an uninterrupted run would have (on one process, with the same data
order). Needs Lightning: ``pip install torchvae[lightning]``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .io.checkpoint import get_rng_state, set_rng_state
from .objectives.losses import ELBOLoss
from .training._batches import unpack
from .training._optimizers import aux_parameters

try:
    L: Any = importlib.import_module("lightning")
except ImportError as e:  # pragma: no cover (the extra is installed where this is tested)
    raise ImportError(
        "torchvae.lightning needs Lightning: pip install torchvae[lightning] (or pip install "
        "lightning)"
    ) from e

__all__ = ["VAEModule"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


_LightningModule: Any = L.LightningModule


class VAEModule(_LightningModule):  # type: ignore[misc]
    """A ``LightningModule`` that trains ``model`` on ``loss``.

    Args:
        model: the torchvae model (its output is what ``loss`` takes).
        loss: the objective, ``loss(output, x) -> LossOutput``; default
            :class:`~torchvae.ELBOLoss`. An objective with auxiliary parameter groups
            (``aux_parameters()``, e.g. FactorVAE's discriminator) trains each group with
            its own optimizer, by Lightning's manual optimization.
        lr: the learning rate of the default optimizers (Adam).
        optimizer: a factory ``params -> Optimizer`` for the main parameters (model and
            loss, less the auxiliary groups); default Adam with ``lr``.

    Example:
        >>> from torchvae import VAE, Decoder, Encoder
        >>> module = VAEModule(VAE(Encoder(4, 8, 2), Decoder(2, 8, 4)), lr=1e-3)
        >>> type(module.loss).__name__
        'ELBOLoss'
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if loss is not None and not isinstance(loss, nn.Module):
            raise TypeError(f"loss must be a torch.nn.Module, got {type(loss).__name__}")
        if not (isinstance(lr, float | int) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        self.model = model
        self.loss = loss if loss is not None else ELBOLoss()
        self.lr = float(lr)
        self.optimizer_factory = optimizer
        self.conditional = bool(getattr(model, "is_conditional", False))
        self._aux = aux_parameters(self.loss)
        self.automatic_optimization = not self._aux
        self.save_hyperparameters(ignore=["model", "loss", "optimizer"])

    def forward(self, x: Tensor, y: Tensor | None = None) -> Any:
        """The model's output for ``x`` (and labels ``y`` for a conditional model)."""
        if self.conditional:
            if y is None:
                raise ValueError("the model is conditional: batches must be (x, y) pairs")
            return self.model(x, y=y)
        return self.model(x)

    def _losses(self, batch: Any) -> tuple[Tensor, Any]:
        x, y = unpack(batch, self.device)
        return x, self.loss(self(x, y), x)

    def _log_losses(self, prefix: str, losses: Any, size: int, on_step: bool) -> None:
        values = {"loss": losses.total, "reconstruction": losses.reconstruction, "kl": losses.kl}
        values.update(dict(losses.terms or {}))
        for name, value in values.items():
            self.log(
                prefix + name,
                value.detach().float(),
                on_step=on_step,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=size,
            )

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        x, losses = self._losses(batch)
        self._log_losses("", losses, x.shape[0], on_step=True)
        if self.automatic_optimization:
            total: Tensor = losses.total
            return total
        main, *aux = self.optimizers()
        main.zero_grad(set_to_none=True)
        self.manual_backward(losses.total)
        main.step()
        for (name, _), opt in zip(self._aux.items(), aux, strict=True):
            opt.zero_grad(set_to_none=True)
            self.manual_backward(losses.aux[name])
            opt.step()
        return None

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, losses = self._losses(batch)
        self._log_losses("val_", losses, x.shape[0], on_step=False)
        dims = x[0].numel()
        bits = (losses.reconstruction + losses.kl).detach().float() / (dims * math.log(2))
        self.log("val_bits_per_dim", bits, on_epoch=True, batch_size=x.shape[0])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random states too, so that a resumed run draws the same noise."""
        checkpoint["torchvae_rng"] = get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "torchvae_rng" in checkpoint:
            set_rng_state(checkpoint["torchvae_rng"])

    def configure_optimizers(self) -> Any:
        held = {id(p) for group in self._aux.values() for p in group}
        every = dict.fromkeys([*self.model.parameters(), *self.loss.parameters()])
        params = [p for p in every if id(p) not in held]
        make = self.optimizer_factory or (lambda ps: torch.optim.Adam(ps, lr=self.lr))
        main = make(params)
        if not self._aux:
            return main
        return [main, *(torch.optim.Adam(group, lr=self.lr) for group in self._aux.values())]
