"""A conditional VAE: ask for a digit, get that digit.

    python examples/conditional.py --epochs 10 --digit 7
    python examples/conditional.py --dataset fashion-mnist --digit 9   # ankle boots

The encoder and the decoder both see the label y (one-hot), so the model learns
p_theta(x | z, y); ``model.sample(n, y=7)`` draws z from the prior and decodes it as a 7.
The Trainer, the losses and ``log_likelihood`` take the (x, y) batches unchanged.

Writes to ``--out-dir``: ``digit_<d>.png`` (``--n`` samples of the class asked for),
``classes.png`` (one row per class, the same z in each column, so a column shows one
"style" drawn as every class) and ``cvae.pt`` (the model; ``torchvae.io.serialization``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from torchvae import (
    ConditionalVAE,
    ProgressBar,
    Trainer,
    mnist_loaders,
    save_model,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a label-conditioned VAE and draw the class asked for.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--digit", type=int, default=7, choices=range(10), metavar="{0..9}",
                        help="the class to draw")  # fmt: skip
    parser.add_argument("--n", type=int, default=16, help="how many of it")
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch")
    parser.add_argument("--out-dir", type=Path, default=Path("out/conditional"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    train_loader, test_loader = mnist_loaders(
        root=args.data_dir,
        dataset=args.dataset,
        flatten=True,
        seed=args.seed,
        max_batches=args.max_batches,
    )

    # Encoder(784 + 10, 400, latent) and Decoder(latent + 10, 400, 784): x and z are each
    # concatenated with the one-hot label.
    model = ConditionalVAE.mlp(input_dim=784, hidden_dim=400, latent_dim=args.latent_dim,
                               num_classes=10)  # fmt: skip
    trainer = Trainer(model, device=args.device, seed=args.seed, callbacks=[ProgressBar()])
    trainer.fit(train_loader, val=test_loader, epochs=args.epochs)
    print(f"test -ELBO of log p(x | y): {trainer.metrics['val_loss']:.2f} nats")

    model.eval()
    generator = torch.Generator(device=trainer.device).manual_seed(args.seed)
    asked = model.sample(args.n, y=args.digit, generator=generator)
    save_image(asked.reshape(-1, 1, 28, 28), args.out_dir / f"digit_{args.digit}.png",
               nrow=min(args.n, 8), padding=1)  # fmt: skip

    # Every class with the same ten z: rows are classes, columns share z.
    z = torch.randn(10, model.latent_dim, generator=generator, device=trainer.device)
    labels = torch.arange(10, device=trainer.device).repeat_interleave(10)
    with torch.no_grad():
        grid = model.decode(z.repeat(10, 1), labels)
    save_image(grid.reshape(-1, 1, 28, 28), args.out_dir / "classes.png", nrow=10, padding=1)
    save_model(model, args.out_dir / "cvae.pt")
    print(f"wrote digit_{args.digit}.png, classes.png and cvae.pt to {args.out_dir}")


if __name__ == "__main__":
    main()
