"""The MMD estimate and kernels, and the InfoVAE and WAE objectives built on them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.objectives.mmd import InfoVAELoss, WAELoss, kernel_matrix, mmd
from torchvae.priors import MixturePrior

D = 12


def rbf_mmd_of_gaussians(shift: float, s: float, t: float, d: int, c: float) -> float:
    """MMD^2 of N(0, s^2 I) and N(shift * 1, t^2 I) under exp(-|x - y|^2 / c), in closed form:
    E exp(-|u|^2 / c) = (1 + 2v/c)^(-d/2) exp(-|m|^2 / (c + 2v)) for u ~ N(m, v I)."""

    def expected(m2: float, v: float) -> float:
        return (1 + 2 * v / c) ** (-d / 2) * math.exp(-m2 / (c + 2 * v))

    cross = expected(d * shift**2, s**2 + t**2)
    return expected(0.0, 2 * s**2) + expected(0.0, 2 * t**2) - 2 * cross


def estimates(shift: float, t: float, kernel: str, repeats: int = 300) -> Tensor:
    g = torch.Generator().manual_seed(0)
    values = []
    for _ in range(repeats):
        x = torch.randn(40, 2, generator=g, dtype=torch.float64)
        y = shift + t * torch.randn(40, 2, generator=g, dtype=torch.float64)
        values.append(mmd(x, y, kernel))  # type: ignore[arg-type]
    return torch.stack(values)


@pytest.mark.parametrize(("shift", "t"), [(0.0, 1.0), (1.0, 1.0), (0.0, 2.0)])
def test_unbiased_against_the_closed_form(shift: float, t: float) -> None:
    values = estimates(shift, t, "rbf")
    exact = rbf_mmd_of_gaussians(shift, 1.0, t, 2, c=4.0)  # the default scale 2d
    assert abs(values.mean() - exact) < 4 * values.std() / math.sqrt(values.numel())


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_same_distribution_near_zero_different_positive(kernel: str) -> None:
    same, other = estimates(0.0, 1.0, kernel), estimates(1.5, 1.0, kernel)
    assert abs(same.mean()) < 4 * same.std() / math.sqrt(same.numel())
    assert (same < 0).any() and (same > 0).any()  # unbiased: either sign
    assert (other > 0).all() and other.mean() > 20 * same.abs().mean()


def test_kernel_values() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, 0.0]])
    # |x - y|^2 = 0 and 25; C = 2d = 4
    torch.testing.assert_close(
        kernel_matrix(x, y, "rbf"), torch.tensor([[1.0], [math.exp(-25 / 4)]])
    )
    torch.testing.assert_close(kernel_matrix(x, y, "imq"), torch.tensor([[1.0], [4 / 29]]))
    summed = kernel_matrix(x, y, "imq", scale=1.0, scales=(1.0, 2.0))
    torch.testing.assert_close(summed, torch.tensor([[2.0], [1 / 26 + 2 / 27]]))


def test_gradient_reaches_the_samples() -> None:
    x = torch.randn(16, 3, requires_grad=True)
    mmd(x, torch.randn(16, 3) + 1.0).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def model(**kwargs: object) -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(D, 8, 3), Decoder(3, 8, D), **kwargs)  # type: ignore[arg-type]


def test_infovae_weights() -> None:
    vae, x = model(), torch.rand(16, D)
    out = vae(x)
    torch.manual_seed(3)
    got = InfoVAELoss(alpha=0.5, lambda_=10.0, kernel="imq")(out, x)
    torch.manual_seed(3)
    divergence = mmd(out.z, torch.randn_like(out.z), "imq")
    recon, kl = -out.log_px_z.mean(), out.kl.mean()  # type: ignore[union-attr]
    torch.testing.assert_close(got.total, recon + 0.5 * kl + 9.5 * divergence)
    assert got.terms is not None
    torch.testing.assert_close(got.terms["mmd"], divergence.detach())


def test_wae_weights_and_the_gradients_of_both() -> None:
    vae, x = model(), torch.rand(16, D)
    out = vae(x)
    torch.manual_seed(3)
    got = WAELoss(lambda_=10.0)(out, x)
    torch.manual_seed(3)
    divergence = mmd(out.z, torch.randn_like(out.z), "imq")
    torch.testing.assert_close(got.total, -out.log_px_z.mean() + 10.0 * divergence)  # type: ignore[union-attr]
    for loss in (got, InfoVAELoss(alpha=1.0, lambda_=10.0)(vae(x), x)):
        vae.zero_grad(set_to_none=True)
        loss.total.backward()
        for name, p in vae.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_samples_come_from_the_models_prior() -> None:
    vae, x = model(prior=MixturePrior(3)), torch.rand(16, D)
    loss = WAELoss(prior=vae.prior)
    assert loss.prior is vae.prior and not list(loss.parameters())  # not the loss's to train
    torch.manual_seed(5)
    got = loss(vae(x), x)
    assert torch.isfinite(got.total)
    with pytest.raises(ValueError, match=r"pass prior=model\.prior"):
        WAELoss()(vae(x), x)
    with pytest.raises(ValueError, match=r"pass prior=model\.prior"):
        InfoVAELoss()(vae(x), x)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kernel must be"):
        WAELoss(kernel="laplace")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        WAELoss(scale=0.0)
    with pytest.raises(TypeError, match="scales"):
        WAELoss(scales=())
    with pytest.raises(ValueError, match="1 - alpha"):
        InfoVAELoss(alpha=2.0)
    with pytest.raises(ValueError, match="alpha \\+ lambda_ - 1"):
        InfoVAELoss(alpha=0.0, lambda_=0.5)
    with pytest.raises(TypeError, match="prior must be a torchvae Prior"):
        WAELoss(prior=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="shapes"):
        mmd(torch.zeros(3, 2), torch.zeros(3, 3))
    conditional = ConditionalVAE.mlp(D, 8, 3, num_classes=2, prior=MixturePrior(2))
    x, y = torch.rand(8, D), torch.arange(8) % 2
    with pytest.raises(ValueError, match="conditioned on 2 classes"):
        WAELoss(prior=conditional.prior)(conditional(x, y), x)
    vae = model()
    with pytest.raises(ValueError, match="one latent sample"):
        WAELoss()(vae(x, n_samples=2), x)
