"""Residual encoder and decoder: any image size, gradients everywhere, files round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchvae import (
    VAE,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    ELBOLoss,
    Gaussian,
    ResNetDecoder,
    ResNetEncoder,
    resnet_vae,
)
from torchvae.io.serialization import load_model, model_config, model_from_config, save_model
from torchvae.models.resnet import ResidualBlock

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 17, 23), (2, 8, 8), (4, 5, 9)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels", [(8,), (8, 16), (4, 8, 8)])
def test_shapes_for_any_image(shape: tuple[int, int, int], channels: tuple[int, ...]) -> None:
    if min(shape[1:]) < 2 ** (len(channels) - 1):
        with pytest.raises(ValueError, match="at least"):
            ResNetEncoder(3, shape, channels, blocks=1)
        return
    enc = ResNetEncoder(3, shape, channels, blocks=1)
    x = torch.rand(2, *shape)
    params = enc(x)
    assert params.mean.shape == (2, 3) and params.log_var.shape == (2, 3)
    torch.testing.assert_close(enc(x.flatten(1)).mean, params.mean)
    out_shape = (5, *shape[1:])
    dec = ResNetDecoder(3, out_shape, tuple(reversed(channels)), blocks=1)
    assert dec.logits(torch.randn(2, 3)).shape == (2, *out_shape)
    probs = dec(torch.randn(2, 3))
    assert bool(((probs >= 0) & (probs <= 1)).all())


@pytest.mark.parametrize(
    "like", [DiscretizedLogisticMixture(3), DiscretizedLogistic(predict_scale=True), Gaussian()]
)
def test_gradients_reach_every_parameter(like: object) -> None:
    model = resnet_vae((3, 16, 16), latent_dim=4, likelihood=like, channels=(8, 16), blocks=2)
    x = torch.randint(0, 256, (3, 3, 16, 16)) / 255
    ELBOLoss()(model(x), x).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_cifar_configuration() -> None:
    model = resnet_vae()
    assert model.data_shape == (3, 32, 32) and model.latent_dim == 128
    assert isinstance(model.likelihood, DiscretizedLogisticMixture)
    assert model.likelihood.n_mix == 10 and model.decoder.output_shape == (100, 32, 32)
    assert model.encoder.channels == (64, 128, 256) and model.decoder.channels == (256, 128, 64)
    x = torch.randint(0, 256, (2, 3, 32, 32)) / 255
    assert model(x).log_px_z.shape == (2,)


@pytest.mark.parametrize("like", [DiscretizedLogisticMixture(2), DiscretizedLogistic()])
def test_save_and_load_round_trip(like: object, tmp_path: Path) -> None:
    model = resnet_vae((3, 8, 8), latent_dim=4, likelihood=like, channels=(4, 8), blocks=1).eval()
    save_model(model, tmp_path / "resnet.pt")
    loaded = load_model(tmp_path / "resnet.pt").eval()
    x = torch.randint(0, 256, (2, 3, 8, 8)) / 255
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x))
    config = model_config(model)
    assert config["encoder"] == {
        "type": "ResNetEncoder",
        "latent_dim": 4,
        "input_shape": [3, 8, 8],
        "channels": [4, 8],
        "blocks": 1,
    }
    assert isinstance(model_from_config(config), VAE)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        ResNetEncoder(4, (3, 32, 32), ())
    with pytest.raises(ValueError, match="blocks"):
        ResNetDecoder(4, (3, 32, 32), (8,), blocks=-1)
    with pytest.raises(ValueError, match="channels, height, width"):
        ResNetEncoder(4, (3, 32))
    with pytest.raises(ValueError, match="features per example"):
        ResNetEncoder(4, (3, 8, 8), (4,))(torch.rand(2, 100))


def test_blocks_start_near_the_identity() -> None:
    block = ResidualBlock(8, scale=0.0)
    h = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(block(h), h)
    assert ResNetEncoder(4, (3, 8, 8), (4,), blocks=0)(torch.rand(1, 3, 8, 8)).mean.shape == (1, 4)
