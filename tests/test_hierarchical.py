"""HierarchicalVAE: shapes, the Ladder VAE's merge, bounds against an exact log p(x), files,
the Trainer (exact resume, TensorBoard), per-layer reports and bad input."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from torchvae.callbacks import ModelCheckpoint, TensorBoardLogger
from torchvae.diagnostics import latent_report, layer_report
from torchvae.gaussian import GaussianParams
from torchvae.io.serialization import load_model
from torchvae.likelihoods import Gaussian
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.hierarchical import HierarchicalVAE, _gaussian_kl, _merge
from torchvae.models.vae import VAE
from torchvae.objectives.importance import log_likelihood
from torchvae.objectives.losses import ELBOLoss, IWAELoss
from torchvae.posteriors import FlowPosterior
from torchvae.priors import FlowPrior, MixturePrior, Prior, StandardNormal, VampPrior
from torchvae.training.trainer import Trainer

F64 = torch.float64
D = 4


def small(dims: tuple[int, ...] = (3, 2), prior: Prior | None = None) -> HierarchicalVAE:
    hidden = tuple((6,) for _ in dims)
    return HierarchicalVAE(D, dims, hidden, prior=prior, likelihood=Gaussian(scale=0.5))


@pytest.mark.parametrize("dims", [(3,), (3, 2), (4, 3, 2)])
@pytest.mark.parametrize("k", [None, 5])
def test_shapes_of_the_output_for_any_depth(dims: tuple[int, ...], k: int | None) -> None:
    model = small(dims)
    out = model(torch.rand(7, D), n_samples=k)
    lead = (7,) if k is None else (k, 7)
    total = sum(dims)
    assert model.latent_dim == total
    assert out.z.shape == out.mean.shape == out.log_var.shape == (*lead, total)
    assert out.logits.shape == (*lead, D)
    for term in (out.log_px_z, out.log_qz, out.log_pz):
        assert term is not None and term.shape == lead
    assert out.kl is not None and out.kl.shape == (7,)
    assert out.kl_per_dim is not None and out.kl_per_dim.shape == (7, total)
    assert out.kl_exact == (len(dims) == 1)
    assert model.sample(3).shape == (3, D)
    assert model.reconstruct(torch.rand(2, 1, 2, 2)).shape == (2, 1, 2, 2)
    assert model.interpolate(torch.rand(2, D), torch.rand(2, D), 5).shape == (5, 2, D)
    assert model.encode(torch.rand(2, D)).mean.shape == (2, dims[-1])
    layers = model.infer(torch.rand(2, D), n_samples=k)
    assert [layer.z.shape[-1] for layer in layers] == list(dims)
    assert [s.shape[-1] for s in model.split(out.z)] == list(dims)


def test_burda_architecture() -> None:
    model = HierarchicalVAE.burda()
    assert model.latent_dims == (100, 50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["encoder.0.hidden.0.weight"] == (200, 784)
    assert shapes["encoder.0.hidden.2.weight"] == (200, 200)
    assert shapes["encoder.0.mean.weight"] == (100, 200)
    assert shapes["encoder.1.hidden.0.weight"] == (100, 200)
    assert shapes["encoder.1.mean.weight"] == (50, 100)
    assert shapes["top_down.0.hidden.0.weight"] == (100, 50)
    assert shapes["top_down.0.mean.weight"] == (100, 100)
    assert shapes["decoder.hidden.0.weight"] == (200, 100)
    assert shapes["decoder.output.weight"] == (784, 200)
    assert all(isinstance(m, torch.nn.Tanh) for m in model.decoder.hidden[1::2])


def test_one_layer_is_the_vae_with_the_same_networks() -> None:
    model = HierarchicalVAE(D, (2,), ((6,),), activation="leaky_relu").double()
    vae = VAE(Encoder(D, [6], 2), Decoder(2, [6], D)).double()
    vae.encoder.load_state_dict(model.encoder[0].state_dict())
    vae.decoder.load_state_dict(model.decoder.state_dict())
    x = torch.rand(5, D, dtype=F64)
    a = model(x, n_samples=3, generator=torch.Generator().manual_seed(1))
    b = vae(x, n_samples=3, generator=torch.Generator().manual_seed(1))
    for name in ("z", "log_px_z", "log_qz", "log_pz", "kl", "kl_per_dim"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)


@given(
    st.lists(st.floats(-3, 3), min_size=4, max_size=4),
    st.lists(st.floats(-4, 2), min_size=2, max_size=2),
)
def test_precision_weighting_is_the_normalized_product(means: list[float], lv: list[float]) -> None:
    up = GaussianParams(torch.tensor(means[:2], dtype=F64), torch.tensor(lv, dtype=F64))
    p = GaussianParams(torch.tensor(means[2:], dtype=F64), torch.tensor(lv[::-1], dtype=F64))
    q = _merge(up, p)
    z = torch.linspace(-5, 5, 11, dtype=F64)[:, None]
    # q(z) ∝ up(z) p(z): their log-ratio is the same constant for every z.
    ratio = q.log_prob(z) - up.log_prob(z) - p.log_prob(z)
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio))
    kl = _gaussian_kl(q, p)
    want = kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std))
    torch.testing.assert_close(kl, want)


def exact_log_px(model: HierarchicalVAE, x: Tensor) -> Tensor:
    """log p(x) by nested 1-D quadrature (every layer one-dimensional)."""
    grid = torch.linspace(-10, 10, 1201, dtype=F64)[:, None]
    log_cell = math.log(float(grid[1, 0] - grid[0, 0]))
    with torch.no_grad():
        logits = model.decoder.logits(grid)  # log p(x | z_1) at every z_1 of the grid
        log_f = model.likelihood.log_prob(logits[:, None].expand(-1, x.shape[0], -1), x)
        for i in range(len(model.latent_dims) - 1):
            p = model._conditional(i, grid)  # p(z_i | z_{i+1} = grid_j), params (G, 1)
            log_k = GaussianParams(p.mean[None], p.log_var[None]).log_prob(grid[:, None])
            log_f = torch.logsumexp(log_k[:, :, None] + log_f[:, None, :], 0) + log_cell
        return torch.logsumexp(model.prior.log_prob(grid)[:, None] + log_f, 0) + log_cell


PRIORS = {
    "standard": StandardNormal,
    "mixture": lambda: MixturePrior(3),
    "vamp": lambda: VampPrior(3),
}


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_bounds_are_below_the_exact_log_px_and_tighten(layers: int, prior: str) -> None:
    torch.manual_seed(layers)
    likelihood = Gaussian(scale=0.5, link="identity")
    model = HierarchicalVAE(
        D, (1,) * layers, ((5,),) * layers, prior=PRIORS[prior](), likelihood=likelihood
    )
    model = model.double()
    with torch.no_grad():  # move the posterior away from p(z | x): a gap for IWAE to close
        for block in model.encoder:
            block.mean.bias.add_(1.0)
            block.log_var.bias.add_(1.5)
    x = torch.randn(2, D, generator=torch.Generator().manual_seed(5), dtype=F64) * 0.7 + 0.5
    exact = exact_log_px(model, x)
    gen = torch.Generator().manual_seed(2)
    reps = 1000
    x_rep = x[:1].expand(reps, D)
    with torch.no_grad():  # nested: IWAE_k on the first k of the same 64 samples
        out = model(x_rep, n_samples=64, generator=gen)
        log_w = out.log_px_z + out.log_pz - out.log_qz  # type: ignore[operator]
        per = [torch.logsumexp(log_w[:k], 0) - math.log(k) for k in (1, 8, 64)]
        elbo = model(x, n_samples=20_000, generator=gen)
        closed = elbo.log_px_z.mean(0) - elbo.kl  # type: ignore[union-attr]
    bounds = [b.mean().item() for b in per]
    errors = [b.std().item() / math.sqrt(reps) for b in per]
    assert bool((closed < exact).all()), (closed, exact)
    assert exact[0] - bounds[0] > 0.02, (bounds, exact)
    gains = [high - low for low, high in itertools.pairwise(per)]
    assert gains[0].mean() > 3 * gains[0].std() / math.sqrt(reps), bounds  # tightens
    assert gains[1].mean() > -3 * gains[1].std() / math.sqrt(reps), bounds  # never loosens
    assert bounds[-1] < exact[0].item() + 3 * errors[-1], (bounds, exact)
    estimate = log_likelihood(model, x_rep[:100], k=1000, generator=gen)
    error = estimate.std().item() / 10
    assert abs(estimate.mean().item() - exact[0].item()) < 4 * error + 0.01, (estimate, exact)


@pytest.mark.parametrize(
    "prior",
    [None, MixturePrior(3), VampPrior(4), FlowPrior(transforms=1, hidden_features=(8,))],
    ids=["standard", "mixture", "vamp", "flow"],
)
def test_gradients_reach_every_parameter(prior: Prior | None) -> None:
    if isinstance(prior, FlowPrior):
        pytest.importorskip("zuko")
    hidden = ((6,), (6,))
    likelihood = Gaussian(scale=0.5, learn_scale=True)
    model = HierarchicalVAE(D, (3, 2), hidden, prior=prior, likelihood=likelihood)
    x = torch.rand(6, D)
    for loss in (ELBOLoss(), IWAELoss(4)):
        model.zero_grad()
        loss(model(x, n_samples=loss.n_samples), x).total.backward()
        # A flow starts as the identity (its last layer zero): its inner layers get zeros.
        missing = [
            n
            for n, p in model.named_parameters()
            if p.grad is None or not (p.grad.any() or ".hyper." in n)
        ]
        assert not missing, (type(loss).__name__, missing)


@pytest.mark.parametrize(
    "prior",
    [None, MixturePrior(3), VampPrior(4)],
    ids=["standard", "mixture", "vamp"],
)
def test_save_load_round_trip(tmp_path: Path, prior: Prior | None) -> None:
    likelihood = Gaussian(scale=0.3, learn_scale=True)
    model = HierarchicalVAE(
        (1, 2, 2), (3, 2), ((6,), ()), activation="elu", prior=prior, likelihood=likelihood
    ).eval()
    model.save(tmp_path / "m.pt")
    loaded = HierarchicalVAE.load(tmp_path / "m.pt").eval()
    assert type(loaded) is HierarchicalVAE and loaded.hidden_dims == ((6,), ())
    assert loaded.activation == "elu" and type(loaded.prior) is type(model.prior)
    x = torch.rand(3, 1, 2, 2)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))
    for a, b in ((model, loaded), (loaded, model)):
        g = torch.Generator().manual_seed(0)
        assert torch.equal(a.sample(4, generator=g), b.sample(4, generator=g.manual_seed(0)))
    assert isinstance(load_model(tmp_path / "m.pt"), HierarchicalVAE)


def trainer(folder: Path, loss: torch.nn.Module) -> Trainer:
    torch.manual_seed(0)
    return Trainer(
        small(),
        loss=loss,
        callbacks=[ModelCheckpoint(folder, keep_last=None)],
        device="cpu",
        seed=0,
        batch_size=8,
    )


DATA = torch.rand(32, D, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("loss", [ELBOLoss, lambda: IWAELoss(3)], ids=["elbo", "iwae"])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, loss: type) -> None:
    straight = trainer(tmp_path / "a", loss())
    straight.fit(DATA, epochs=3)
    trainer(tmp_path / "b", loss()).fit(DATA, epochs=1)
    resumed = trainer(tmp_path / "b", loss())
    resumed.fit(DATA, epochs=3, resume="last")
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]


@pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning")
def test_tensorboard_logs_its_reconstructions_samples_and_top_layer(tmp_path: Path) -> None:
    from test_callbacks import read_events

    model = HierarchicalVAE((1, 4, 4), (3, 2), ((8,), (8,)))
    logger = TensorBoardLogger(tmp_path / "tb", n_images=4, diagnostics=24)
    Trainer(model, callbacks=[logger], device="cpu", batch_size=8).fit(
        torch.rand(24, 1, 4, 4), epochs=1
    )
    values = [v for e in read_events(tmp_path / "tb") for v in e.summary.value]
    images = Counter(v.tag for v in values if v.WhichOneof("value") == "image")
    assert images == {"reconstructions": 1, "samples": 1}
    scalars = {v.tag: v.simple_value for v in values if v.WhichOneof("value") == "simple_value"}
    assert math.isfinite(scalars["latent/kl"]) and "latent/active_units" in scalars


def test_the_diagnostics_describe_the_top_layer_and_layer_report_every_layer() -> None:
    model = small((3, 2))
    x = torch.rand(200, D)
    top = latent_report(model, x)
    assert top.latent_dim == 2
    report = layer_report(model, x, n_samples=64, generator=torch.Generator().manual_seed(0))
    assert report.latent_dims == (3, 2) and report.n_examples == 200
    assert report.kl[1] == pytest.approx(top.kl, rel=1e-5)  # the top layer's KL is exact
    with torch.no_grad():
        out = model(x, n_samples=256)
    assert out.kl is not None
    assert sum(report.kl) == pytest.approx(float(out.kl.mean()), rel=0.03)
    for layer_kl, per_dim in zip(report.kl, report.kl_per_dim, strict=True):
        assert per_dim is not None and float(per_dim.sum()) == pytest.approx(layer_kl)
    with torch.no_grad():  # the top layer no longer depends on x: no active unit there
        model.encoder[1].mean.weight.zero_()
    report = layer_report(model, x, threshold=1e-12)
    assert report.active_units[1] == 0 and report.active_units[0] == 3
    assert set(report.scalars()) == {"kl_1", "kl_2", "active_units_1", "active_units_2"}
    assert "layer 2: active units 0/2" in str(report)


def test_layer_report_refuses_what_it_cannot_describe() -> None:
    with pytest.raises(TypeError, match="HierarchicalVAE"):
        layer_report(VAE(Encoder(D, 4, 2), Decoder(2, 4, D)), torch.rand(5, D))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        layer_report(small(), torch.rand(1, D))
    with pytest.raises(ValueError, match="threshold"):
        layer_report(small(), torch.rand(5, D), threshold=-1.0)


def test_sampling_at_temperature_zero_is_the_chain_of_means() -> None:
    model = small((3, 2))
    a, b = model.sample(3, temperature=0), model.sample(3, temperature=0)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(4)
    assert torch.equal(model.sample(3, generator=g), model.sample(3, generator=g.manual_seed(4)))


def test_bad_input_and_unsupported_parts_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="one sequence of hidden sizes per stochastic layer"):
        HierarchicalVAE(D, (3, 2), ((4,),))
    with pytest.raises(ValueError, match="at least one stochastic layer"):
        HierarchicalVAE(D, (), ())
    with pytest.raises(ValueError, match="activation must be one of"):
        HierarchicalVAE(D, (3,), ((4,),), activation="gelu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hidden_dims"):
        HierarchicalVAE(D, (3,), (4,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"top layer's prior, which has latent_dims\[-1\] = 2"):
        small(prior=StandardNormal(latent_dim=3))

    class MyPrior(StandardNormal):
        pass

    with pytest.raises(TypeError, match="prior must be one of"):
        small(prior=MyPrior())
    model = small()
    with pytest.raises(ValueError, match="takes no class labels"):
        model(torch.rand(2, D), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="takes no class labels"):
        model.sample(2, y=1)
    with pytest.raises(ValueError, match="4 features"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="n_samples"):
        model(torch.rand(2, D), n_samples=0)
    with pytest.raises(ValueError, match="latent_dim = 5"):
        model.decode(torch.rand(2, 3))
    with pytest.raises(ValueError, match="x must be finite"):
        model(torch.full((2, D), float("nan")))


def test_a_flow_posterior_is_refused() -> None:
    pytest.importorskip("zuko")
    with pytest.raises(TypeError, match="precision-weighted Gaussian"):
        HierarchicalVAE(D, (3,), ((4,),), posterior=FlowPosterior())
