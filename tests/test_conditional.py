"""Tests for the conditional VAE."""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from torchvae.models.conditional import ConditionalVAE, EmbeddingKind
from torchvae.models.decoders import ConvDecoder, Decoder
from torchvae.models.encoders import ConvEncoder, Encoder
from torchvae.models.vae import VAEOutput
from torchvae.objectives.importance import log_likelihood
from torchvae.objectives.losses import ELBOLoss, IWAELoss
from torchvae.posteriors import FlowPosterior
from torchvae.priors import FlowPrior, MixturePrior, StandardNormal, VampPrior


def small(embedding: EmbeddingKind = "one_hot") -> ConditionalVAE:
    torch.manual_seed(0)
    return ConditionalVAE.mlp(
        input_dim=12, hidden_dim=16, latent_dim=3, num_classes=4, embedding=embedding
    )


def test_attributes_and_explicit_construction() -> None:
    model = ConditionalVAE(Encoder(784 + 10, 32, 5), Decoder(5 + 10, 32, 784), num_classes=10)
    assert model.is_conditional is True
    assert (model.latent_dim, model.num_classes, model.embedding_dim) == (5, 10, 10)
    assert model.data_shape == (784,)
    assert "num_classes=10" in repr(model)
    learned = ConditionalVAE.mlp(784, 32, 5, 10, embedding="learned", embedding_dim=3)
    assert learned.embedding_dim == 3
    assert learned.encoder.input_dim == 787 and learned.decoder.latent_dim == 8


@pytest.mark.parametrize("embedding", ["one_hot", "learned"])
def test_forward_shapes_flat_and_images(embedding: EmbeddingKind) -> None:
    model = ConditionalVAE.mlp(64, 16, 3, num_classes=5, embedding=embedding)
    y = torch.tensor([0, 4, 2])
    out = model(torch.rand(3, 64), y)
    assert isinstance(out, VAEOutput)
    assert out.logits.shape == (3, 64) and out.mean.shape == (3, 3) and out.z.shape == (3, 3)
    out = model(torch.rand(3, 1, 8, 8), y=y, n_samples=4)
    assert out.logits.shape == (4, 3, 1, 8, 8) and out.z.shape == (4, 3, 3)
    assert model.encode(torch.rand(3, 64), y).mean.shape == (3, 3)
    assert model.decode(torch.randn(2, 3, 3), y).shape == (2, 3, 64)
    assert model.reconstruct(torch.rand(3, 1, 8, 8), y).shape == (3, 1, 8, 8)
    assert model.posterior(torch.rand(3, 64), y).event_shape == (3,)
    assert model.prior().event_shape == (3,)
    assert model.embed(y).shape == (3, model.embedding_dim)


@pytest.mark.parametrize("embedding", ["one_hot", "learned"])
def test_conv_label_as_channels(embedding: EmbeddingKind) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE.conv(
        latent_dim=4, num_classes=3, input_shape=(1, 8, 8), channels=(4, 8), embedding=embedding
    )
    assert model.label_as_channels and model.data_shape == (1, 8, 8)
    assert isinstance(model.encoder, ConvEncoder) and isinstance(model.decoder, ConvDecoder)
    x = torch.rand(2, 1, 8, 8)
    out = model(x, torch.tensor([0, 2]), n_samples=3)
    assert out.logits.shape == (3, 2, 1, 8, 8)
    assert model(x.flatten(1), torch.tensor([0, 2])).logits.shape == (2, 64)
    assert model.sample(5, y=1).shape == (5, 1, 8, 8)
    m0 = model.encode(x, torch.tensor([0, 0])).mean
    m1 = model.encode(x, torch.tensor([1, 1])).mean
    assert not torch.allclose(m0, m1)


@pytest.mark.parametrize("embedding", ["one_hot", "learned"])
def test_label_changes_encoder_and_decoder(embedding: EmbeddingKind) -> None:
    model = small(embedding)
    x = torch.rand(4, 12)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert not torch.allclose(model.encode(x, y0).mean, model.encode(x, y1).mean)
    z = torch.randn(4, 3)
    assert not torch.allclose(model.decode(z, y0), model.decode(z, y1))
    g = torch.Generator().manual_seed(1)
    a = model(x, y0, generator=g).logits
    b = model(x, y0, generator=g.manual_seed(1)).logits
    c = model(x, y1, generator=g.manual_seed(1)).logits
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("embedding", ["one_hot", "learned"])
def test_gradients_reach_every_parameter(embedding: EmbeddingKind) -> None:
    model = small(embedding)
    x = torch.rand(6, 12)
    ELBOLoss()(model(x, torch.arange(6) % 4), x).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if embedding == "learned":
        assert any(name.startswith("embedding.") for name, _ in model.named_parameters())


def test_sample_labels_forms_and_reproducibility() -> None:
    model = small()
    a = model.sample(3, y=2, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, y=torch.tensor([2, 2, 2]), generator=torch.Generator().manual_seed(0))
    c = model.sample(3, y=[2, 2, 2], generator=torch.Generator().manual_seed(0))
    d = model.sample(3, y=torch.tensor(2), generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 12) and torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    e = model.sample(3, y=1, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, e)
    assert ((a >= 0) & (a <= 1)).all()
    flat = model.sample(2, y=0, temperature=0.0)
    assert torch.allclose(flat[0], flat[1])


def test_interpolate_ends_are_reconstructions() -> None:
    model = small()
    x1, x2 = torch.rand(2, 12), torch.rand(2, 12)
    y1, y2 = torch.tensor([0, 1]), torch.tensor([3, 2])
    path = model.interpolate(x1, x2, y1, y2, steps=5)
    assert path.shape == (5, 2, 12)
    torch.testing.assert_close(path[0], model.reconstruct(x1, y1))
    torch.testing.assert_close(path[-1], model.reconstruct(x2, y2))
    same_label = model.interpolate(x1, x2, y1, steps=3)
    torch.testing.assert_close(same_label[0], model.reconstruct(x1, y1))
    with pytest.raises(ValueError, match="steps"):
        model.interpolate(x1, x2, y1, steps=1)


def test_losses_work_unchanged() -> None:
    model = small()
    x, y = torch.rand(5, 12), torch.tensor([0, 1, 2, 3, 0])
    elbo = ELBOLoss()(model(x, y), x)
    assert elbo.total.ndim == 0 and elbo.kl_per_dim.shape == (3,)
    iwae = IWAELoss(k=4)(model(x, y=y, n_samples=4), x)
    assert torch.isfinite(iwae.total)


def test_log_likelihood_slices_labels_per_chunk() -> None:
    model = small()
    x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 3, 0, 1])
    g = torch.Generator().manual_seed(3)
    whole = log_likelihood(model, x, k=5, y=y, chunk_size=2, generator=g)
    assert whole.shape == (6,) and torch.isfinite(whole).all()
    g.manual_seed(3)
    parts = torch.cat(
        [
            log_likelihood(model, x[i : i + 2], k=5, y=y[i : i + 2], chunk_size=2, generator=g)
            for i in range(0, 6, 2)
        ]
    )
    torch.testing.assert_close(whole, parts)
    other = log_likelihood(model, x, k=5, y=(y + 1) % 4, generator=g)
    assert not torch.allclose(whole, other)


def test_state_dict_round_trip() -> None:
    model = small("learned")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = ConditionalVAE.mlp(12, 16, 3, 4, embedding="learned")
    fresh.load_state_dict(torch.load(buffer))
    x, y = torch.rand(3, 12), torch.tensor([1, 2, 3])
    torch.testing.assert_close(fresh.reconstruct(x, y), model.reconstruct(x, y))


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        (torch.tensor([0.0, 1.0, 2.0]), TypeError, r"integer tensor.*float32.*y.long\(\)"),
        (torch.tensor([True, False, True]), TypeError, "integer tensor"),
        ([0, 1, 2], TypeError, "torch.Tensor"),
        (torch.tensor([0, 1]), ValueError, r"shape \(batch,\) = \(3,\)"),
        (torch.tensor([[0, 1, 2]]), ValueError, r"got shape \(1, 3\)"),
        (torch.eye(4, dtype=torch.long)[:3], ValueError, r"argmax\(1\)"),
        (torch.tensor([0, 4, 1]), ValueError, r"\[0, 4\).*\[0, 4\]"),
        (torch.tensor([0, -1, 1]), ValueError, r"\[0, 4\).*\[-1, 1\]"),
    ],
)
def test_bad_labels_give_clear_errors(y: object, error: type[Exception], match: str) -> None:
    model = small()
    with pytest.raises(error, match=match):
        model(torch.rand(3, 12), y)


def test_bad_sample_labels() -> None:
    model = small()
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.sample(2, y=4)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        model.sample(2, y=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="int class label"):
        model.sample(2, y=True)
    with pytest.raises(TypeError, match="int class label"):
        model.sample(2, y="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer tensor"):
        model.sample(2, y=torch.tensor([0.5, 1.0]))


def test_bad_input_and_construction() -> None:
    model = small()
    with pytest.raises(ValueError, match="12 features per example"):
        model(torch.rand(3, 13), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(3, 12, dtype=torch.uint8), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"encoder.latent_dim \+ embedding_dim = 5 \+ 10 = 15"):
        ConditionalVAE(Encoder(794, 8, 5), Decoder(12, 8, 784), num_classes=10)
    with pytest.raises(ValueError, match="label's 10-dim embedding"):
        ConditionalVAE(Encoder(794, 8, 5), Decoder(5, 8, 784), num_classes=10)
    with pytest.raises(ValueError, match=r"encoder\.input_dim must be features"):
        ConditionalVAE(Encoder(10, 8, 5), Decoder(15, 8, 784), num_classes=10)
    with pytest.raises(ValueError, match="channels = image channels"):
        ConditionalVAE(ConvEncoder(4, (3, 8, 8), (4,)), Decoder(7, 8, 64), num_classes=3)
    with pytest.raises(ValueError, match="'one_hot' or 'learned'"):
        ConditionalVAE.mlp(12, 8, 3, 4, embedding="onehot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="embedding='learned'"):
        ConditionalVAE.mlp(12, 8, 3, 4, embedding_dim=2)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalVAE.mlp(12, 8, 3, 0)
    with pytest.raises(TypeError, match=r"decoder must be a torch\.nn\.Module"):
        ConditionalVAE(Encoder(14, 8, 3), "dec", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="neither has one"):
        ConditionalVAE(nn.Identity(), nn.Identity(), 2)


@given(
    batch=st.integers(1, 5),
    num_classes=st.integers(1, 7),
    latent=st.integers(1, 4),
    k=st.one_of(st.none(), st.integers(1, 3)),
    data=st.data(),
)
def test_shapes_property(
    batch: int, num_classes: int, latent: int, k: int | None, data: st.DataObject
) -> None:
    model = ConditionalVAE.mlp(6, [5], latent, num_classes)
    y = torch.tensor(
        data.draw(st.lists(st.integers(0, num_classes - 1), min_size=batch, max_size=batch))
    )
    out = model(torch.rand(batch, 6), y, n_samples=k)
    lead = () if k is None else (k,)
    assert out.logits.shape == (*lead, batch, 6) and out.z.shape == (*lead, batch, latent)
    torch.testing.assert_close(
        model.embed(y).sum(1), torch.ones(batch), msg="one-hot rows each hold one 1"
    )


def blocks(y: torch.Tensor, noise: float = 0.05) -> torch.Tensor:
    """8x8 images: class c has a bright 4x4 block in quadrant c, the rest dark."""
    x = torch.rand(y.shape[0], 1, 8, 8) * noise
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, 4 * r : 4 * r + 4, 4 * col : 4 * col + 4] = 1 - noise * torch.rand(1)
    return x.flatten(1)


def quadrant_means(images: torch.Tensor) -> torch.Tensor:
    """(n, 64) -> (n, 4) mean brightness of each 4x4 quadrant."""
    q = images.reshape(-1, 2, 4, 2, 4)
    return q.mean(dim=(2, 4)).reshape(-1, 4)


def test_trains_until_samples_show_the_class_feature() -> None:
    torch.manual_seed(0)
    model = ConditionalVAE.mlp(input_dim=64, hidden_dim=32, latent_dim=2, num_classes=4)
    loss_fn = ELBOLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = quadrant_means(model.sample(64, y=3))
    for _ in range(300):
        y = torch.randint(0, 4, (64,))
        x = blocks(y)
        loss = loss_fn(model(x, y), x)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    assert float(loss.total.detach()) < 12.0, float(loss.total.detach())  # ~44 untrained
    # Before training no class stands out; after, class c lights quadrant c only.
    assert (before[:, 3] - before[:, :3].max(1).values).mean() < 0.2
    model.eval()
    for c in range(4):
        q = quadrant_means(model.sample(64, y=c, generator=torch.Generator().manual_seed(c)))
        others = [i for i in range(4) if i != c]
        assert q[:, c].min() > 0.7, (c, q[:, c].min())
        assert q[:, others].max() < 0.3, (c, q[:, others].max())


def _priors() -> dict[str, Any]:
    found: dict[str, Any] = {
        "standard": StandardNormal,
        "mixture": lambda: MixturePrior(3),
        "vamp": lambda: VampPrior(8),
    }
    if importlib.util.find_spec("zuko") is not None:
        found["flow"] = lambda: FlowPrior(1, (6,))
        found["flow-posterior"] = "flow-posterior"
    return found


@pytest.mark.parametrize("name", sorted(_priors()))
def test_every_prior_and_posterior_works_conditioned(name: str) -> None:
    build = _priors()[name]
    torch.manual_seed(0)
    parts = (
        {"posterior": FlowPosterior(1, (6,))} if build == "flow-posterior" else {"prior": build()}
    )
    model = ConditionalVAE.mlp(12, 16, 3, num_classes=4, **parts)
    x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = ELBOLoss()(model(x, y), x)
    loss.total.backward()
    for key, p in model.named_parameters():
        if not key.startswith("embedding"):
            assert p.grad is not None, key
    assert model.sample(5, y=2).shape == (5, 12)
    assert log_likelihood(model, x, k=8, y=y).shape == (6,)
    with pytest.raises(ValueError, match="the model is conditional"):
        model.sample(2, y=None)  # type: ignore[arg-type]
