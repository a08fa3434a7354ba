"""The textbook chapter's code (see ``shared/seed``) running against torchvae's classes.

The chapter's ``Model``, ``loss_function`` and training loop are copied here as the
chapter writes them (with ``device`` fixed to the CPU and fake data in place of MNIST);
only its ``Encoder`` and ``Decoder`` are replaced by torchvae's, with the same signatures.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.optim as optim
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.losses import ELBOLoss

device = torch.device("cpu")
x_dim, hidden_dim, latent_dim = 784, 400, 200


# --- the chapter's code, as written -------------------------------------------------------


class TextbookEncoder(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.input1 = nn.Linear(input_dim, hidden_dim)
        self.input2 = nn.Linear(input_dim, hidden_dim)  # the defect
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.var = nn.Linear(hidden_dim, latent_dim)
        self.LeakyReLU = nn.LeakyReLU(0.2)
        self.training = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h_ = self.LeakyReLU(self.input1(x))
        h_ = self.LeakyReLU(self.input2(h_))
        mean = self.mean(h_)
        log_var = self.var(h_)
        return mean, log_var


class TextbookDecoder(nn.Module):
    def __init__(self, latent_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.hidden1 = nn.Linear(latent_dim, hidden_dim)
        self.hidden2 = nn.Linear(hidden_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, output_dim)
        self.LeakyReLU = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.LeakyReLU(self.hidden1(x))
        h = self.LeakyReLU(self.hidden2(h))
        x_hat = torch.sigmoid(self.output(h))
        return x_hat


class Model(nn.Module):
    def __init__(self, Encoder: nn.Module, Decoder: nn.Module) -> None:  # noqa: N803
        super().__init__()
        self.Encoder = Encoder
        self.Decoder = Decoder

    def reparameterization(self, mean: Tensor, var: Tensor) -> Tensor:
        epsilon = torch.randn_like(var).to(device)
        z = mean + var * epsilon
        return z

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mean, log_var = self.Encoder(x)
        z = self.reparameterization(mean, torch.exp(0.5 * log_var))
        x_hat = self.Decoder(z)
        return x_hat, mean, log_var


def loss_function(x: Tensor, x_hat: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    reproduction_loss = nn.functional.binary_cross_entropy(x_hat, x, reduction="sum")
    KLD = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp())
    return reproduction_loss + KLD


# --- tests ------------------------------------------------------------------------------


def fake_mnist(n: int = 40) -> TensorDataset:
    """Binary 28x28 images around a fixed stroke pattern, with labels, as MNIST gives them."""
    gen = torch.Generator().manual_seed(0)
    pattern = torch.zeros(1, 28, 28)
    pattern[:, 6:22, 12:16] = 0.9
    pattern[:, 6:10, 8:20] = 0.9
    images = torch.bernoulli((pattern + 0.05).expand(n, 1, 28, 28), generator=gen)
    return TensorDataset(images, torch.randint(0, 10, (n,), generator=gen))


def test_the_chapters_training_loop_runs_on_torchvae_classes() -> None:
    batch_size = 10
    train_loader = DataLoader(dataset=fake_mnist(), batch_size=batch_size, shuffle=True)
    encoder = Encoder(input_dim=x_dim, hidden_dim=hidden_dim, latent_dim=latent_dim)
    decoder = Decoder(latent_dim=latent_dim, hidden_dim=hidden_dim, output_dim=x_dim)
    model = Model(Encoder=encoder, Decoder=decoder).to(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    epoch_losses = []
    model.train()
    for _epoch in range(3):
        overall_loss = 0.0
        for _batch_idx, (x, _) in enumerate(train_loader):
            x = x.view(batch_size, x_dim)
            x = x.to(device)
            optimizer.zero_grad()
            x_hat, mean, log_var = model(x)
            loss = loss_function(x, x_hat, mean, log_var)
            overall_loss += loss.item()
            loss.backward()
            optimizer.step()
        epoch_losses.append(overall_loss / len(train_loader.dataset))  # type: ignore[arg-type]

    assert all(torch.isfinite(torch.tensor(epoch_losses)))
    assert epoch_losses[-1] < 0.5 * epoch_losses[0], epoch_losses

    # The chapter's generation step: decode noise into images.
    with torch.no_grad():
        noise = torch.randn(batch_size, latent_dim).to(device)
        generated_images = decoder(noise)
    assert generated_images.view(batch_size, 1, 28, 28).shape == (batch_size, 1, 28, 28)
    assert bool(((generated_images >= 0) & (generated_images <= 1)).all())


def test_elbo_loss_times_batch_is_the_chapters_loss_for_the_same_sample() -> None:
    encoder, decoder = (
        Encoder(x_dim, hidden_dim, latent_dim),
        Decoder(latent_dim, hidden_dim, x_dim),
    )
    textbook, vae = Model(encoder, decoder), VAE(encoder, decoder)
    x = fake_mnist(8)[:][0].view(8, x_dim)

    torch.manual_seed(3)
    x_hat, mean, log_var = textbook(x)
    torch.manual_seed(3)
    out = vae(x)  # the same global random stream gives the same epsilon
    torch.testing.assert_close(out.x_hat, x_hat)
    torch.testing.assert_close(ELBOLoss()(out, x).total * 8, loss_function(x, x_hat, mean, log_var))

    # And from the same z, built by hand.
    z = out.z.detach()
    by_hand = VAEOutput(decoder.logits(z), mean, log_var, z)
    torch.testing.assert_close(
        ELBOLoss()(by_hand, x).total * 8, loss_function(x, decoder(z), mean, log_var)
    )


def test_the_chapters_encoder_defect_is_fixed() -> None:
    x = torch.rand(4, x_dim)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        TextbookEncoder(x_dim, hidden_dim, latent_dim)(x)
    mean, log_var = Encoder(x_dim, hidden_dim, latent_dim)(x)
    assert mean.shape == log_var.shape == (4, latent_dim)


def test_torchvae_encoder_is_the_chapters_encoder_with_the_second_layer_fixed() -> None:
    chapter = TextbookEncoder(x_dim, hidden_dim, latent_dim)
    chapter.input2 = nn.Linear(hidden_dim, hidden_dim)  # the fix
    ours = Encoder(x_dim, hidden_dim, latent_dim)
    ours.load_state_dict(
        {
            "hidden.0.weight": chapter.input1.weight,
            "hidden.0.bias": chapter.input1.bias,
            "hidden.2.weight": chapter.input2.weight,
            "hidden.2.bias": chapter.input2.bias,
            "mean.weight": chapter.mean.weight,
            "mean.bias": chapter.mean.bias,
            "log_var.weight": chapter.var.weight,
            "log_var.bias": chapter.var.bias,
        }
    )
    x = torch.rand(3, x_dim)
    for a, b in zip(ours(x), chapter(x), strict=True):
        torch.testing.assert_close(a, b)


def test_torchvae_decoder_is_the_chapters_decoder() -> None:
    chapter = TextbookDecoder(latent_dim, hidden_dim, x_dim)
    ours = Decoder(latent_dim, hidden_dim, x_dim)
    ours.load_state_dict(
        {
            "hidden.0.weight": chapter.hidden1.weight,
            "hidden.0.bias": chapter.hidden1.bias,
            "hidden.2.weight": chapter.hidden2.weight,
            "hidden.2.bias": chapter.hidden2.bias,
            "output.weight": chapter.output.weight,
            "output.bias": chapter.output.bias,
        }
    )
    z = torch.randn(3, latent_dim)
    torch.testing.assert_close(ours(z), chapter(z))
    torch.testing.assert_close(torch.sigmoid(ours.logits(z)), chapter(z))


def test_eval_mode_is_respected() -> None:
    # The chapter hard-codes self.training = True; torchvae's modules follow train()/eval().
    model = VAE(Encoder(x_dim, hidden_dim, latent_dim), Decoder(latent_dim, hidden_dim, x_dim))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
