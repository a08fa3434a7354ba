"""A small, deterministic training run for the tests that need their own processes.

Run alone (``python tests/_train_script.py``) or under ``torchrun`` by
``tests/test_faults.py`` and ``tests/test_distributed.py``. Each
``--phase NAME:EPOCHS[:FLAG...]`` trains a fresh model with checkpoints in ``DIR/NAME``; flags:
``resume`` (from the last checkpoint), ``dataloader`` or ``tensorloader`` (the training data's
form; a Tensor otherwise), ``val`` (validation data). It saves, per rank,
``DIR/NAME-EPOCHS-rankR.pt``: the final weights, the trainer's history, the per-epoch mean loss
of this rank's own examples and how many it saw, the checkpoints this rank wrote, and an
``evaluate`` of held-out data.
``--hang-at EPOCH:BATCH`` writes ``DIR/ready`` before that (0-based) batch of that epoch and
sleeps, so that a test can kill the process mid-epoch.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from torchvae.callbacks import Callback, ModelCheckpoint
from torchvae.data import TensorLoader
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.training.trainer import StepOutput, Trainer

D = 12


class LocalLoss(Callback):
    """This rank's own mean training loss per epoch, from the per-step losses."""

    def __init__(self) -> None:
        self.sum, self.n = 0.0, 0
        self.epochs: list[float] = []
        self.counts: list[int] = []

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.sum, self.n = 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
        if not output.skipped:
            self.sum += float(output.losses.total.detach()) * output.x.shape[0]
            self.n += output.x.shape[0]

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.epochs.append(self.sum / self.n)
        self.counts.append(self.n)


class HangAt(Callback):
    """Write ``ready`` before batch ``batch`` of epoch ``epoch``, then sleep (to be killed)."""

    def __init__(self, ready: Path, epoch: int, batch: int) -> None:
        self.ready, self.epoch, self.batch, self.seen = ready, epoch, batch, 0

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.seen = 0

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        if trainer.epoch == self.epoch and self.seen == self.batch:
            tmp = self.ready.with_suffix(".tmp")
            tmp.write_text(f"{trainer.epoch} {self.seen} {trainer.global_step}")
            os.replace(tmp, self.ready)  # the test never reads a half-written file
            time.sleep(120)
        self.seen += 1


def make_data(n: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(2, D, generator=g) * 3, torch.randn(D, generator=g)
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return torch.sigmoid(z @ w + b)


def make_train(kind: str, n: int) -> Any:
    data = make_data(n)
    if kind == "tensor":
        return data
    if kind == "dataloader":
        return DataLoader(TensorDataset(data), batch_size=16, shuffle=True)
    return TensorLoader(data, batch_size=16, shuffle=True, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--phase", action="append", required=True, help="NAME:EPOCHS[:resume]")
    parser.add_argument("--examples", type=int, default=99)
    parser.add_argument("--hang-at", default=None, help="EPOCH:BATCH")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategy", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for spec in args.phase:
        name, epochs, *flags = spec.split(":")
        kind = next((f for f in flags if f in ("dataloader", "tensorloader")), "tensor")
        torch.manual_seed(0)
        model = VAE(Encoder(D, 8, 2), Decoder(2, 8, D))
        local = LocalLoss()
        callbacks: list[Callback] = [local, ModelCheckpoint(args.dir / name, keep_last=None)]
        if args.hang_at is not None:
            epoch, batch = (int(v) for v in args.hang_at.split(":"))
            callbacks.append(HangAt(args.dir / "ready", epoch, batch))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        trainer = Trainer(
            model,
            optimizer=optimizer,
            callbacks=callbacks,
            device=args.device,
            seed=0,
            batch_size=16,
            strategy=args.strategy,
        )
        trainer.fit(
            make_train(kind, args.examples),
            make_data(21, seed=1) if "val" in flags else None,
            epochs=int(epochs),
            resume="last" if "resume" in flags else None,
        )
        checkpoint = callbacks[1]
        assert isinstance(checkpoint, ModelCheckpoint)
        torch.save(
            {
                "model": model.state_dict(),
                "history": trainer.history,
                "local": local.epochs,
                "counts": local.counts,
                "world_size": trainer.world_size,
                "ddp": trainer.ddp is not None,
                "device": str(trainer.device),
                "saved": checkpoint.saved,
                "evaluate": trainer.evaluate(make_data(21, seed=1)),
            },
            args.dir / f"{name}-{epochs}-rank{trainer.rank}.pt",
        )


if __name__ == "__main__":
    main()
