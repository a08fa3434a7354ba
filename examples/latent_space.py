"""A VAE with a two-dimensional latent space, drawn whole.

    python examples/latent_space.py --dataset fashion-mnist --epochs 10

Trains a VAE with ``latent_dim=2`` (MLP 784-512-256-2) with ``torchvae.Trainer``, then
writes to ``--out-dir``:

- ``manifold.png``: the decoder's output over a ``--grid`` x ``--grid`` grid of z, placed
  at the quantiles of the prior N(0, I) so that each image stands for an equal share of
  the prior's mass;
- ``scatter.png``: the posterior means mu_phi(x) of the test set, one dot per image,
  coloured by label, with a legend (the central 99% of each axis).

The pictures are drawn with Pillow (installed with torchvision), so no plotting library
is needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from torchvae import VAE, Decoder, Encoder, ProgressBar, Trainer, mnist_loaders

# Ten colours that stay apart for most readers (Tableau 10).
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a 2-D latent VAE; draw its decoded manifold and its posterior means.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--grid", type=int, default=20, help="images per side of the manifold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch")
    parser.add_argument("--out-dir", type=Path, default=Path("out/latent_space"))
    return parser.parse_args()


def manifold(model: VAE, n: int) -> torch.Tensor:
    """Decode an ``n`` x ``n`` grid of z at the prior's quantiles; ``(n * n, 1, 28, 28)``."""
    probs = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    ticks = torch.special.ndtri(probs)  # the standard normal's quantiles
    # Row r, column c: z = (ticks[c], ticks[n - 1 - r]), so z_2 grows upwards.
    z2, z1 = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    return model.decode(z.to(next(model.parameters()).device)).reshape(-1, 1, 28, 28)


def save_grey(images: torch.Tensor, path: Path, n_cols: int) -> None:
    """Save ``(N, 1, H, W)`` images in [0, 1] as one greyscale PNG (a third of RGB's size)."""
    grid = make_grid(images.cpu(), nrow=n_cols, padding=0)[0]
    pixels = grid.mul(255).round().to(torch.uint8).contiguous()
    Image.frombytes("L", (grid.shape[1], grid.shape[0]), pixels.numpy().tobytes()).save(
        path, optimize=True
    )


def scatter(points: torch.Tensor, labels: torch.Tensor, names: list[str], path: Path) -> None:
    """Draw ``points`` ``(N, 2)`` coloured by ``labels`` with a legend; save a PNG."""
    size, margin, legend_w = 480, 24, 130
    image = Image.new("RGB", (size + legend_w, size), "white")
    draw = ImageDraw.Draw(image)
    # The central 99% on each axis fills the frame; the few points beyond are not drawn.
    lo = points.quantile(0.005, dim=0)
    hi = points.quantile(0.995, dim=0)
    inside = ((points >= lo) & (points <= hi)).all(dim=1)
    span = (hi - lo).clamp_min(1e-6)
    xy = (points[inside] - lo) / span * (size - 2 * margin) + margin
    xy[:, 1] = size - xy[:, 1]  # the image's y axis points down
    frame = [margin // 2, margin // 2, size - margin // 2, size - margin // 2]
    draw.rectangle(frame, outline=(200, 200, 200))
    for (x, y), label in zip(xy.tolist(), labels[inside].tolist(), strict=True):
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=PALETTE[label % 10])
    for i, name in enumerate(names):
        top = margin + 18 * i
        draw.rectangle([size + 4, top, size + 14, top + 10], fill=PALETTE[i])
        draw.text((size + 20, top - 1), name, fill="black")
    draw.text((margin, size - margin // 2 + 2), "mu_1", fill="black")
    draw.text((2, margin // 2 + 2), "mu_2", fill="black")
    image.save(path, optimize=True)


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

    model = VAE(Encoder(784, [512, 256], 2), Decoder(2, [256, 512], 784))
    trainer = Trainer(model, device=args.device, seed=args.seed, callbacks=[ProgressBar()])
    trainer.fit(train_loader, epochs=args.epochs)

    model.eval()
    save_grey(manifold(model, args.grid), args.out_dir / "manifold.png", n_cols=args.grid)

    means, labels = [], []
    with torch.no_grad():
        for x, y in test_loader:
            means.append(model.encode(x.to(trainer.device)).mean.cpu())
            labels.append(y)
    scatter(torch.cat(means), torch.cat(labels), CLASS_NAMES[args.dataset],
            args.out_dir / "scatter.png")  # fmt: skip
    print(f"wrote manifold.png and scatter.png to {args.out_dir}")


if __name__ == "__main__":
    main()
