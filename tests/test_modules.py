"""Encoders and decoders: one contract, checked for every encoder/decoder pair.

The contract (what :class:`torchvae.models.vae.VAE` relies on): an encoder maps ``(batch, ...)``
to ``(mean, log_var)``, each ``(batch, latent_dim)``; a decoder's ``logits(z)`` has the
data's features and ``decoder(z)`` lies in [0, 1]. Plugged into a VAE, the pair must give
the input's shape back, pass gradients to every parameter, be deterministic in eval mode,
and survive a state_dict round trip.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from torchvae.gaussian import GaussianParams
from torchvae.models.decoders import ConvDecoder, Decoder
from torchvae.models.encoders import ConvEncoder, Encoder
from torchvae.models.vae import VAE
from torchvae.objectives.losses import ELBOLoss, IWAELoss

LATENT = 3
SHAPE = (1, 8, 8)
FEATURES = 64

ENCODERS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: Encoder(FEATURES, [10, 7], LATENT),
    "conv": lambda: ConvEncoder(LATENT, input_shape=SHAPE, channels=(2, 3)),
}
DECODERS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: Decoder(LATENT, [7, 10], FEATURES),
    "conv": lambda: ConvDecoder(LATENT, output_shape=SHAPE, channels=(3, 2)),
}
PAIRS = [(e, d) for e in ENCODERS for d in DECODERS]


@pytest.fixture(params=PAIRS, ids=[f"{e}-{d}" for e, d in PAIRS])
def model(request: pytest.FixtureRequest) -> VAE:
    enc, dec = request.param
    return VAE(ENCODERS[enc](), DECODERS[dec]())


@pytest.mark.parametrize("shape", [(1, FEATURES), (5, FEATURES), (1, *SHAPE), (4, *SHAPE)])
def test_contract_shapes(model: VAE, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape)
    mean, log_var = model.encoder(x)
    assert mean.shape == log_var.shape == (shape[0], LATENT)
    out = model(x)
    assert out.x_hat.shape == out.logits.shape == x.shape
    assert out.z.shape == (shape[0], LATENT)
    assert model(x, n_samples=2).x_hat.shape == (2, *x.shape)
    assert model.reconstruct(x).shape == x.shape
    assert model.encoder.posterior(x).event_shape == (LATENT,)


@pytest.mark.parametrize("loss", [ELBOLoss(), IWAELoss(k=3)], ids=["elbo", "iwae"])
def test_contract_gradients_reach_every_parameter(model: VAE, loss: nn.Module) -> None:
    x = torch.rand(4, *SHAPE)
    out = model(x, n_samples=getattr(loss, "n_samples", None))
    loss(out, x).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert bool((p.grad != 0).any()), name


def test_contract_gradient_flows_through_the_sample(model: VAE) -> None:
    # Through the reparameterization, a loss on the decoded sample alone still reaches
    # the encoder's log-variance head.
    x = torch.rand(3, FEATURES)
    model(x).logits.sum().backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and bool((p.grad != 0).any()), name


def test_contract_eval_is_deterministic(model: VAE) -> None:
    model.eval()
    x = torch.rand(3, *SHAPE)
    z = torch.randn(3, LATENT)
    assert torch.equal(model.encode(x).mean, model.encode(x).mean)
    assert torch.equal(model.encode(x).log_var, model.encode(x).log_var)
    assert torch.equal(model.reconstruct(x), model.reconstruct(x))
    assert torch.equal(model.decode(z), model.decode(z))
    a = model(x, generator=torch.Generator().manual_seed(3))
    b = model(x, generator=torch.Generator().manual_seed(3))
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v) if isinstance(u, torch.Tensor) else u is v or u == v
    c = model(x, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a.z, c.z)


def test_contract_state_dict_round_trips(model: VAE) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(12345)
    clone = VAE(_fresh_like(model.encoder, ENCODERS), _fresh_like(model.decoder, DECODERS))
    x = torch.rand(2, FEATURES)
    assert not torch.equal(clone.reconstruct(x), model.reconstruct(x))
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(clone.reconstruct(x), model.reconstruct(x))
    gen = torch.Generator
    assert torch.equal(clone.sample(2, gen().manual_seed(0)), model.sample(2, gen().manual_seed(0)))


def _fresh_like(module: nn.Module, factories: dict[str, Callable[[], nn.Module]]) -> nn.Module:
    return factories["conv" if isinstance(module, (ConvEncoder, ConvDecoder)) else "mlp"]()


def test_contract_float64(model: VAE) -> None:
    model = model.double()
    x = torch.rand(2, FEATURES)  # float32 input is cast to the parameters' dtype
    out = model(x)
    assert out.logits.dtype == out.z.dtype == torch.float64
    loss = ELBOLoss()(out, x)
    assert loss.total.dtype == loss.reconstruction.dtype == torch.float64
    loss.total.backward()
    assert model.sample(2).dtype == torch.float64


EXTREMES = [0.0, 1.0, -1.0, 1e4, -1e4, 3e38, -3e38, 1e-30]


@pytest.mark.parametrize("kind", list(DECODERS))
@given(
    z=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        min_size=LATENT,
        max_size=LATENT,
    )
)
def test_decoder_output_in_unit_interval_for_any_finite_z(kind: str, z: list[float]) -> None:
    torch.manual_seed(0)
    decoder = DECODERS[kind]()
    for values in (z, *[[e] * LATENT for e in EXTREMES]):
        out = decoder(torch.tensor([values]))
        assert bool(torch.isfinite(out).all()), values
        assert bool(((out >= 0) & (out <= 1)).all()), values
        assert bool(torch.isfinite(decoder.logits(torch.tensor([values]))).all()), values


@given(
    batch=st.integers(1, 4),
    input_dim=st.integers(1, 20),
    hidden=st.one_of(st.integers(1, 12), st.lists(st.integers(1, 12), max_size=3)),
    latent_dim=st.integers(1, 6),
    image=st.booleans(),
)
def test_mlp_shapes_for_any_sizes(
    batch: int, input_dim: int, hidden: int | list[int], latent_dim: int, image: bool
) -> None:
    enc = Encoder(input_dim, hidden, latent_dim)
    dec = Decoder(latent_dim, hidden, input_dim)
    x = torch.rand(batch, 1, 1, input_dim) if image else torch.rand(batch, input_dim)
    params = enc(x)
    assert isinstance(params, GaussianParams)
    assert params.mean.shape == params.log_var.shape == (batch, latent_dim)
    assert dec(params.mean).shape == (batch, input_dim)
    n_hidden = 2 if isinstance(hidden, int) else len(hidden)
    assert sum(isinstance(m, nn.Linear) for m in enc.modules()) == n_hidden + 2
    assert sum(isinstance(m, nn.Linear) for m in dec.modules()) == n_hidden + 1
    out = VAE(enc, dec)(x)
    assert out.x_hat.shape == x.shape


@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    n_layers=st.integers(1, 2),
    cells=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    latent_dim=st.integers(1, 5),
)
def test_conv_shapes_for_any_sizes(
    batch: int, channels: int, n_layers: int, cells: tuple[int, int], latent_dim: int
) -> None:
    factor = 2**n_layers
    shape = (channels, cells[0] * factor, cells[1] * factor)
    widths = tuple(range(2, 2 + n_layers))
    enc = ConvEncoder(latent_dim, input_shape=shape, channels=widths)
    dec = ConvDecoder(latent_dim, output_shape=shape, channels=widths[::-1])
    for x in (torch.rand(batch, *shape), torch.rand(batch, channels * shape[1] * shape[2])):
        mean, log_var = enc(x)
        assert mean.shape == log_var.shape == (batch, latent_dim)
        assert dec(mean).shape == (batch, *shape)
        assert VAE(enc, dec)(x).x_hat.shape == x.shape


def test_textbook_encoder_has_the_second_layer_fixed() -> None:
    # The chapter's second layer was Linear(input_dim, hidden_dim) applied to hidden
    # activations, so it only ran when input_dim == hidden_dim.
    enc = Encoder(input_dim=784, hidden_dim=400, latent_dim=200)
    linears = [m for m in enc.hidden if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 400), (400, 400)]
    assert all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in enc.hidden[1::2])
    enc.eval()
    assert not enc.training  # the chapter's hard-coded self.training = True is gone


def test_encoder_and_decoder_sizes_are_attributes() -> None:
    enc, dec = Encoder(12, 5, 2), Decoder(2, (4, 6), 12)
    assert (enc.input_dim, enc.hidden_dims, enc.latent_dim) == (12, (5, 5), 2)
    assert (dec.latent_dim, dec.hidden_dims, dec.output_dim, dec.output_shape) == (
        2,
        (4, 6),
        12,
        (12,),
    )
    linear = Encoder(12, [], 2)
    assert linear.hidden_dims == () and len(linear.hidden) == 0


def test_custom_activation() -> None:
    enc = Encoder(6, [4], 2, activation=nn.Tanh)
    assert any(isinstance(m, nn.Tanh) for m in enc.modules())
    dec = ConvDecoder(2, output_shape=(1, 4, 4), channels=(3,), activation=nn.ReLU)
    assert any(isinstance(m, nn.ReLU) for m in dec.modules())
    assert dec(torch.randn(1, 2)).shape == (1, 1, 4, 4)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Encoder(0, 4, 2), r"input_dim must be a positive int \(>= 1\), got 0"),
        (lambda: Encoder(8, -4, 2), r"hidden_dim must be a positive int \(>= 1\), got -4"),
        (lambda: Encoder(8, [4, 0], 2), r"hidden_dim\[1\] must be a positive int \(>= 1\), got 0"),
        (lambda: Encoder(8, 4, 0), r"latent_dim must be a positive int \(>= 1\), got 0"),
        (lambda: Decoder(-1, 4, 8), r"latent_dim must be a positive int \(>= 1\), got -1"),
        (lambda: Decoder(2, 4, 0), r"output_dim must be a positive int \(>= 1\), got 0"),
        (lambda: ConvEncoder(0), r"latent_dim must be a positive int \(>= 1\), got 0"),
        (lambda: ConvEncoder(2, (1, 0, 8)), r"input_shape\[1\] must be a positive int"),
        (lambda: ConvEncoder(2, (28, 28)), r"input_shape must be \(channels, height, width\)"),
        (
            lambda: ConvEncoder(2, (1, 3, 8), (2, 3)),
            r"at least 2\*\*len\(channels\) = 4 \(each convolution halves them\), got 3x8",
        ),
        (lambda: ConvEncoder(2, channels=(4, 0)), r"channels\[1\] must be a positive int"),
        (lambda: ConvDecoder(2, channels=()), r"channels must name at least one feature map"),
        (lambda: ConvDecoder(2, (1, 28)), r"output_shape must be \(channels, height, width\)"),
    ],
)
def test_non_positive_or_inconsistent_sizes(build: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Encoder(8.0, 4, 2), "input_dim must be a positive int, got float 8.0"),
        (lambda: Encoder(8, True, 2), "hidden_dim must be a positive int, got bool True"),
        (lambda: Encoder(8, "4", 2), "hidden_dim must be a positive int or a sequence"),
        (lambda: Decoder(2, 4, None), "output_dim must be a positive int, got NoneType None"),
        (
            lambda: ConvEncoder(2, channels=(2.5,)),
            r"channels\[0\] must be a positive int, got float",
        ),
    ],
)
def test_sizes_of_the_wrong_type(build: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        build()


@pytest.mark.parametrize("make", list(ENCODERS.values()), ids=list(ENCODERS))
def test_encoder_rejects_wrong_features_rank_and_dtype(make: Callable[[], nn.Module]) -> None:
    encoder = make()
    with pytest.raises(
        ValueError, match=r"x must have 64 features per example .* got shape \(2, 63\)"
    ):
        encoder(torch.rand(2, 63))
    with pytest.raises(
        ValueError, match=r"x must have shape \(batch, \.\.\.\) .* got shape \(64,\)"
    ):
        encoder(torch.rand(64))
    with pytest.raises(
        TypeError, match=r"x must be a floating-point tensor, got dtype torch\.int32"
    ):
        encoder(torch.ones(2, 64, dtype=torch.int32))


@pytest.mark.parametrize("make", list(DECODERS.values()), ids=list(DECODERS))
def test_decoder_rejects_wrong_latent_size(make: Callable[[], nn.Module]) -> None:
    decoder = make()
    with pytest.raises(
        ValueError, match=r"z must have 3 features per example .* got shape \(2, 4\)"
    ):
        decoder(torch.randn(2, 4))
    with pytest.raises(
        TypeError, match=r"z must be a floating-point tensor, got dtype torch\.bool"
    ):
        decoder(torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 30, 30), (3, 17, 23), (2, 8, 5), (1, 4, 4)])
def test_conv_networks_take_any_image_size(shape: tuple[int, int, int]) -> None:
    encoder, decoder = ConvEncoder(3, shape, (4, 6)), ConvDecoder(3, shape, (6, 4))
    x = torch.rand(2, *shape)
    assert encoder(x).mean.shape == (2, 3)
    assert decoder.logits(torch.randn(2, 3)).shape == (2, *shape)
    model = VAE(encoder, decoder)
    assert model(x).logits.shape == x.shape and model.sample(3).shape == (3, *shape)
    loss = ELBOLoss()(model(x), x)
    loss.total.backward()
    assert all(p.grad is not None for p in model.parameters())
