"""The textbook chapter, reproduced with torchvae: a VAE on MNIST, step by step.

Every step of the chapter is here, in its order: MNIST in batches of 100 (shuffled for
training), the MLP encoder q_phi(z|x) and decoder p_theta(x|z) of sizes 784-400-200, the
reparameterization trick (inside ``VAE.forward``), the loss of binary cross-entropy plus
the KL divergence, Adam with a learning rate of 1e-3, the loss of each epoch written to
TensorBoard with tensorboardX, and a grid of generated digits saved at the end.

    python examples/train_mnist.py                       # MNIST, 30 epochs, as the chapter
    python examples/train_mnist.py --dataset fashion-mnist --epochs 10
    tensorboard --logdir out/train_mnist/runs            # the loss per epoch

Writes ``samples.png`` (64 generated images), ``vae.pt`` (the model, for
``examples/generate.py``) and TensorBoard logs under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from torchvision.utils import save_image

from torchvae import VAE, Decoder, ELBOLoss, Encoder, mnist_loaders, save_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the textbook's VAE (784-400-200) on MNIST or Fashion-MNIST.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the four IDX files (default: search the usual places; see "
        "torchvae.data)",
    )
    parser.add_argument("--download", action="store_true", help="download MNIST if absent")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden-dim", type=int, default=400)
    parser.add_argument("--latent-dim", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="stop each epoch after this many batches (quick smoke runs)",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("out/train_mnist"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    # The data: the training set shuffled, the test set in order, batches of 100,
    # each image flattened to 784 values in [0, 1].
    train_loader, test_loader = mnist_loaders(
        root=args.data_dir,
        dataset=args.dataset,
        batch_size=args.batch_size,
        flatten=True,
        seed=args.seed,
        download=args.download,
    )

    # The networks: q_phi(z|x) returns (mean, log_var); p_theta(x|z) returns values in
    # [0, 1]. VAE joins them with the reparameterization trick z = mean + std * eps.
    x_dim = 28 * 28
    encoder = Encoder(input_dim=x_dim, hidden_dim=args.hidden_dim, latent_dim=args.latent_dim)
    decoder = Decoder(latent_dim=args.latent_dim, hidden_dim=args.hidden_dim, output_dim=x_dim)
    model = VAE(encoder, decoder).to(device)

    # The loss: binary cross-entropy summed over the pixels plus the KL divergence
    # -0.5 * sum(1 + log_var - mean^2 - exp(log_var)), in nats per image.
    loss_fn = ELBOLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    writer = SummaryWriter(str(args.out_dir / "runs" / stamp))

    print(f"training on {args.dataset} ({device}), {args.epochs} epochs")
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        for batch_idx, (x, _) in enumerate(train_loader):
            if args.max_batches is not None and batch_idx >= args.max_batches:
                break
            x = x.to(device)
            out = model(x)
            loss = loss_fn(out, x)
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()
            total += loss.total.item() * x.shape[0]
            seen += x.shape[0]
        train_loss = total / seen

        model.eval()
        total, seen = 0.0, 0
        with torch.no_grad():
            for batch_idx, (x, _) in enumerate(test_loader):
                if args.max_batches is not None and batch_idx >= args.max_batches:
                    break
                x = x.to(device)
                total += loss_fn(model(x), x).total.item() * x.shape[0]
                seen += x.shape[0]
        test_loss = total / seen

        writer.add_scalar("loss/train", train_loss, epoch)
        writer.add_scalar("loss/test", test_loss, epoch)
        print(
            f"epoch {epoch:3d}  train loss {train_loss:8.2f}  test loss {test_loss:8.2f} "
            f"nats/image  ({time.perf_counter() - start:.1f} s)"
        )
    writer.close()

    # Generate: decode 64 draws from the prior p(z) = N(0, I).
    generator = torch.Generator(device=device).manual_seed(args.seed)
    samples = model.sample(64, generator=generator)
    save_image(samples.view(64, 1, 28, 28), args.out_dir / "samples.png", nrow=8, padding=1)
    save_model(model, args.out_dir / "vae.pt")
    print(
        f"wrote {args.out_dir / 'samples.png'}, {args.out_dir / 'vae.pt'} and the "
        f"TensorBoard logs in {args.out_dir / 'runs'}"
    )


if __name__ == "__main__":
    main()
