"""Your own networks in torchvae: a hand-written convolutional encoder and decoder.

    python examples/custom_model.py --dataset fashion-mnist --epochs 5
    python examples/custom_model.py --dataset fashion-mnist --epochs 8 --resume
    tensorboard --logdir out/custom_model/tb

``VAE`` asks little of its networks (see the ``VAE`` docstring):

- the encoder's ``forward(x)`` returns ``(mean, log_var)``, each ``(batch, latent_dim)``;
- the decoder's ``logits(z)`` returns unconstrained outputs with x's number of features
  (or its ``forward(z)`` returns values in [0, 1], which is less stable);
- one of them has an int attribute ``latent_dim``.

Anything that follows it plugs into ``VAE``, ``ELBOLoss``, ``log_likelihood`` and
``Trainer``. Here the Trainer logs to TensorBoard, keeps checkpoints (``--resume``
continues from the last one) and the model's weights are saved with ``save_weights``.

Writes to ``--out-dir``: ``tb/`` (TensorBoard), ``checkpoints/``, ``samples.png``,
``weights.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.utils import save_image

from torchvae import (
    VAE,
    ModelCheckpoint,
    ProgressBar,
    TensorBoardLogger,
    Trainer,
    log_likelihood,
    mnist_loaders,
    save_weights,
)


# --8<-- [start:networks]
class ConvEncoder(nn.Module):
    """28x28 image -> (mean, log_var): two stride-2 convolutions with batch norm."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim  # the attribute VAE reads
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1),  # 14x14
            nn.BatchNorm2d(width),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),  # 7x7
            nn.BatchNorm2d(2 * width),
            nn.SiLU(),
            nn.Flatten(),
        )
        self.heads = nn.Linear(2 * width * 7 * 7, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x.reshape(-1, 1, 28, 28))
        mean, log_var = self.heads(h).chunk(2, dim=-1)
        return mean, log_var


class ConvDecoder(nn.Module):
    """z -> logits of a 28x28 image: a linear map to 7x7, two transposed convolutions."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.width = width
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * 7 * 7), nn.SiLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # 14x14
            nn.BatchNorm2d(width),
            nn.SiLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 28x28, no activation
        )

    def logits(self, z: Tensor) -> Tensor:
        """What VAE and the losses use: unconstrained outputs, ``(batch, 1, 28, 28)``."""
        h = self.project(z).reshape(-1, 2 * self.width, 7, 7)
        out: Tensor = self.upsample(h)
        return out

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(z))


# --8<-- [end:networks]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a VAE made of hand-written convolutional networks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    parser.add_argument("--epochs", type=int, default=5, help="total epochs, resumed ones too")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--k", type=int, default=100, help="importance samples for log p(x)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch")
    parser.add_argument("--out-dir", type=Path, default=Path("out/custom_model"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    train_loader, test_loader = mnist_loaders(
        root=args.data_dir,
        dataset=args.dataset,
        seed=args.seed,  # (B, 1, 28, 28) batches
        max_batches=args.max_batches,
    )

    model = VAE(ConvEncoder(args.latent_dim), ConvDecoder(args.latent_dim))
    trainer = Trainer(
        model,
        device=args.device,
        seed=args.seed,
        grad_clip=100.0,
        callbacks=[
            TensorBoardLogger(args.out_dir / "tb", hparams={"latent_dim": args.latent_dim}),
            ModelCheckpoint(args.out_dir / "checkpoints", keep_last=2),
            ProgressBar(),
        ],
    )
    trainer.fit(train_loader, val=test_loader, epochs=args.epochs,
                resume="last" if args.resume else None)  # fmt: skip

    model.eval()
    x, _ = next(iter(test_loader))
    x = x[:32].to(trainer.device)
    nll = -log_likelihood(model, x, k=args.k).mean()
    print(f"test -ELBO {trainer.metrics['val_loss']:.2f} nats; "
          f"-log p(x) ~ {nll:.2f} nats (k={args.k}, 32 images)")  # fmt: skip

    samples = model.sample(64, generator=torch.Generator(trainer.device).manual_seed(0))
    save_image(samples, args.out_dir / "samples.png", nrow=8, padding=1)
    save_weights(model, args.out_dir / "weights.pt")
    print(f"wrote samples.png, weights.pt, checkpoints/ and tb/ to {args.out_dir}")


if __name__ == "__main__":
    main()
