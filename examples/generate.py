"""From a trained model: a grid of samples, reconstructions and rows of interpolations.

    python examples/train_mnist.py --epochs 10          # writes out/train_mnist/vae.pt
    python examples/generate.py --checkpoint out/train_mnist/vae.pt

Writes to ``--out-dir``:

- ``samples.png``: ``--n`` draws from the prior N(0, I), decoded;
- ``reconstructions.png``: test images (odd rows) above their reconstructions (even rows);
- ``interpolation.png``: each row decodes the line between the posterior means of two
  test images, ``z_t = (1 - t) mu(x1) + t mu(x2)``.

When ``--checkpoint`` does not exist, the textbook's model is first trained for
``--epochs`` epochs with ``torchvae.Trainer`` and saved there.

The checkpoint is a file written by ``save_model`` or ``VAE.save`` (as ``train_mnist.py``
does) and read with ``VAE.load``; it holds the architecture as JSON and the weights, so no code is
needed to rebuild the model, and loading it runs no code from the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from torchvae import (
    VAE,
    Decoder,
    Encoder,
    ProgressBar,
    Trainer,
    load_dataset,
    mnist_loaders,
    save_model,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Samples, reconstructions and interpolations from a saved VAE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("out/train_mnist/vae.pt"))
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--rows", type=int, default=4, help="rows of interpolations")
    parser.add_argument("--steps", type=int, default=10, help="images per interpolation row")
    parser.add_argument("--temperature", type=float, default=1.0, help="prior std scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="when --checkpoint does not exist: train the textbook model this many epochs "
        "and save it there first",
    )
    parser.add_argument(
        "--max-batches", type=int, default=None, help="batches per epoch of that training"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("out/generate"))
    return parser.parse_args()


def as_images(x: torch.Tensor) -> torch.Tensor:
    """``(n, 784)`` or ``(n, 1, 28, 28)`` -> ``(n, 1, 28, 28)`` for ``save_image``."""
    return x.reshape(-1, 1, 28, 28)


def train(args: argparse.Namespace) -> None:
    """Train the textbook's 784-400-200 VAE with the Trainer and save it to --checkpoint."""
    train_loader, test_loader = mnist_loaders(
        root=args.data_dir,
        dataset=args.dataset,
        flatten=True,
        seed=args.seed,
        max_batches=args.max_batches,
    )
    model = VAE(Encoder(784, 400, 200), Decoder(200, 400, 784))
    trainer = Trainer(model, seed=args.seed, callbacks=[ProgressBar()])
    trainer.fit(train_loader, epochs=args.epochs)
    print(
        f"no checkpoint at {args.checkpoint}: trained one, test -ELBO "
        f"{trainer.evaluate(test_loader)['loss']:.2f} nats"
    )
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.checkpoint)


def main() -> None:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.checkpoint.exists():
        train(args)
    model = VAE.load(args.checkpoint, map_location="cpu").eval()
    generator = torch.Generator().manual_seed(args.seed)

    samples = model.sample(args.n, generator=generator, temperature=args.temperature)
    n_cols = max(1, int(args.n**0.5))
    save_image(as_images(samples), args.out_dir / "samples.png", nrow=n_cols, padding=1)

    images, _ = load_dataset(args.dataset, args.data_dir, train=False)
    pick = torch.randperm(images.shape[0], generator=generator)[: max(16, 2 * args.rows)]
    x = images[pick].float().div(255).unsqueeze(1)  # test images (n, 1, 28, 28) in [0, 1]

    recon = model.reconstruct(x).reshape(x.shape)
    grid = torch.cat([x[:8], recon[:8], x[8:16], recon[8:16]])
    save_image(grid, args.out_dir / "reconstructions.png", nrow=8, padding=1)

    x1, x2 = x[: args.rows], x[args.rows : 2 * args.rows]
    path = model.interpolate(x1, x2, steps=args.steps)  # (steps, rows, 1, 28, 28)
    rows = path.transpose(0, 1).reshape(-1, 1, 28, 28)  # row r: x1[r] -> x2[r]
    save_image(rows, args.out_dir / "interpolation.png", nrow=args.steps, padding=1)
    print(f"wrote samples.png, reconstructions.png and interpolation.png to {args.out_dir}")


if __name__ == "__main__":
    main()
