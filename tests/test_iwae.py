"""The importance-weighted objectives: values, gradients against the defining formulas,
bounds below an exact log p(x), the Trainer (exact resume, DDP) and bad input."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from torchvae.callbacks import ModelCheckpoint
from torchvae.likelihoods import Gaussian
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.hierarchical import HierarchicalVAE
from torchvae.models.vae import VAE
from torchvae.objectives.iwae import CIWAELoss, DReGIWAELoss, MIWAELoss, PIWAELoss
from torchvae.objectives.losses import IWAELoss
from torchvae.priors import MixturePrior, VampPrior
from torchvae.training.trainer import Trainer

F64 = torch.float64
D = 4


def vae(latent: int = 2, prior: object = None) -> VAE:
    model = VAE(
        Encoder(D, [6], latent),
        Decoder(latent, [6], D),
        likelihood=Gaussian(scale=0.5, link="identity"),
        prior=prior,  # type: ignore[arg-type]
    )
    return model.double()


def hierarchical() -> HierarchicalVAE:
    likelihood = Gaussian(scale=0.5, link="identity")
    return HierarchicalVAE(D, (2, 1), ((6,), (5,)), likelihood=likelihood).double()


def data(n: int = 5, seed: int = 0) -> Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def log_weights(model: VAE, x: Tensor, n: int, seed: int = 1) -> Tensor:
    out = model(x, n_samples=n, generator=torch.Generator().manual_seed(seed))
    return out.log_px_z + out.log_pz - out.log_qz  # type: ignore[no-any-return,operator]


def iwae(log_w: Tensor) -> Tensor:
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def miwae(log_w: Tensor, m: int) -> Tensor:
    return torch.stack([iwae(g) for g in log_w.chunk(m)]).mean(0)


def groups(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """(inference, generative) parameters by name."""
    phi = {n: p for n, p in model.named_parameters() if n.startswith(("encoder.", "posterior_"))}
    theta = {n: p for n, p in model.named_parameters() if n not in phi}
    return phi, theta


def grads_of(loss: nn.Module, model: VAE, x: Tensor, seed: int = 1) -> dict[str, Tensor]:
    model.zero_grad()
    out = model(x, n_samples=loss.n_samples, generator=torch.Generator().manual_seed(seed))
    loss(out, x).total.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def autograd(value: Tensor, params: dict[str, nn.Parameter]) -> dict[str, Tensor]:
    grads = torch.autograd.grad(value, list(params.values()), retain_graph=True)
    return dict(zip(params, grads, strict=True))


def assert_same(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    for name, g in want.items():
        torch.testing.assert_close(got[name], g, msg=name)


# --- values -----------------------------------------------------------------------------


def test_values_are_the_defining_formulas_and_order() -> None:
    model, x = vae(), data()
    log_w = log_weights(model, x, 8).detach()
    gen = {"generator": torch.Generator().manual_seed(1)}
    values = {}
    for name, loss in {
        "iwae": IWAELoss(8),
        "miwae": MIWAELoss(4, 2),
        "miwae1": MIWAELoss(8, 1),
        "ciwae": CIWAELoss(8, beta=0.3),
        "piwae": PIWAELoss(model, 4, 2),
        "dreg": DReGIWAELoss(model, 4, 2),
    }.items():
        values[name] = float(loss(model(x, n_samples=8, **gen), x).total.detach())
        gen["generator"].manual_seed(1)
    assert values["iwae"] == pytest.approx(-float(iwae(log_w).mean()))
    assert values["miwae1"] == pytest.approx(values["iwae"])
    assert values["miwae"] == pytest.approx(-float(miwae(log_w, 2).mean()))
    elbo = log_w.mean(0).mean()
    assert values["ciwae"] == pytest.approx(-float(0.3 * elbo + 0.7 * iwae(log_w).mean()))
    assert values["piwae"] == pytest.approx(values["iwae"])  # its value: IWAE over M K
    assert values["dreg"] == pytest.approx(values["miwae"])
    # Jensen on the same samples: ELBO <= MIWAE <= IWAE.
    assert -float(elbo) > values["miwae"] > values["iwae"]
    assert -float(elbo) > values["ciwae"] > values["iwae"]


def test_the_terms_log_the_parts() -> None:
    model, x = vae(), data()
    out = CIWAELoss(6, beta=0.5)(model(x, n_samples=6), x)
    assert out.terms is not None and set(out.terms) == {"neg_elbo", "neg_iwae"}
    assert float(out.total.detach()) == pytest.approx(
        0.5 * float(out.terms["neg_elbo"] + out.terms["neg_iwae"])
    )
    out = PIWAELoss(model, 3, 2)(model(x, n_samples=6), x)
    assert out.terms is not None and float(out.terms["neg_miwae"]) > float(out.total.detach())


# --- gradients against the definitions ----------------------------------------------------


def flow_vae() -> VAE:
    pytest.importorskip("zuko")
    from torchvae.posteriors import FlowPosterior

    model = VAE(
        Encoder(D, [6], 2),
        Decoder(2, [6], D),
        likelihood=Gaussian(scale=0.5, link="identity"),
        posterior=FlowPosterior(transforms=2, hidden_features=(8,)),
    )
    return model.double()


def far_vae() -> VAE:
    """Log-weights hundreds of nats apart: some inner bounds' IWAE weights underflow."""
    model = VAE(Encoder(D, [6], 2), Decoder(2, [6], D), likelihood=Gaussian(scale=0.01))
    return model.double()


PIWAE_MODELS = {
    "vae": vae,
    "hierarchical": hierarchical,
    "vamp": lambda: vae(prior=VampPrior(3)),  # the prior calls the encoder
    "mixture": lambda: vae(prior=MixturePrior(2)),  # the prior has parameters of its own
    "flow-posterior": flow_vae,
    "far": far_vae,
}


@pytest.mark.parametrize("name", list(PIWAE_MODELS))
def test_piwae_gives_theta_the_iwae_and_phi_the_miwae_gradient(name: str) -> None:
    model, x = PIWAE_MODELS[name](), data()
    decoded: list[int] = []
    last = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)][-1]
    last.register_forward_hook(lambda *_: decoded.append(1))
    got = grads_of(PIWAELoss(model, 3, 2), model, x)
    # One pass of the decoder, but for the hierarchical model (which re-scores the samples).
    assert len(decoded) == (2 if name == "hierarchical" else 1)
    phi, theta = groups(model)
    log_w = log_weights(model, x, 6)
    if name == "far":  # the case the floor is for: an inner bound far below the other
        spread = torch.logsumexp(log_w, 0) - torch.stack([g.logsumexp(0) for g in log_w.chunk(2)])
        assert float(spread.detach().max()) > 800.0  # its IWAE weights are exactly 0 in float64
    assert_same(got, autograd(-iwae(log_w).mean(), theta))
    assert_same(got, autograd(-miwae(log_w, 2).mean(), phi))
    iwae_phi = autograd(-iwae(log_w).mean(), phi)  # and that differs: the test can fail
    assert any(not torch.allclose(got[n], g) for n, g in iwae_phi.items())


@pytest.mark.parametrize("build", [vae, hierarchical], ids=["vae", "hierarchical"])
def test_miwae_and_ciwae_gradients_are_those_of_their_bounds(build: type) -> None:
    model, x = build(), data()
    log_w = log_weights(model, x, 6)
    params = dict(model.named_parameters())
    assert_same(grads_of(MIWAELoss(3, 2), model, x), autograd(-miwae(log_w, 2).mean(), params))
    log_w = log_weights(model, x, 6)
    want = autograd(-(0.25 * log_w.mean(0) + 0.75 * iwae(log_w)).mean(), params)
    assert_same(grads_of(CIWAELoss(6, beta=0.25), model, x), want)


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("prior", [None, "mixture"])
def test_dreg_gradient_is_the_doubly_reparameterized_formula(m: int, prior: str | None) -> None:
    model = vae(prior=MixturePrior(2) if prior else None)
    x, k = data(), 3
    got = grads_of(DReGIWAELoss(model, k, m), model, x)
    # The definition: z = mu + sigma * eps, log w differentiated through z only for phi.
    mean, log_var = model.encoder(x)
    eps = torch.randn((k * m, *mean.shape), generator=torch.Generator().manual_seed(1), dtype=F64)
    z = mean + torch.exp(0.5 * log_var) * eps

    def log_w(z: Tensor) -> Tensor:
        fixed = (z - mean.detach()) * torch.exp(-0.5 * log_var.detach())
        log_q = -0.5 * (fixed.square() + log_var.detach() + math.log(2 * math.pi)).sum(-1)
        logits = model.decoder.logits(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], D)
        return model.likelihood.log_prob(logits, x) + model.prior.log_prob(z) - log_q

    values = log_w(z)
    weights = torch.cat([torch.softmax(g, 0) for g in values.detach().chunk(m)])
    phi, theta = groups(model)
    grad_z = torch.autograd.grad((weights.square() * values).sum(), z, retain_graph=True)[0]
    want_phi = torch.autograd.grad(z, list(phi.values()), grad_outputs=-grad_z / (m * len(x)))
    assert_same(got, dict(zip(phi, want_phi, strict=True)))
    surrogate = -(weights * log_w(z.detach())).sum() / (m * len(x))
    assert_same(got, autograd(surrogate, theta))


def test_dreg_is_unbiased_for_the_iwae_gradient_with_less_variance() -> None:
    """Over many draws, DReG's inference gradient averages to IWAE's (Tucker et al.)."""
    model, k, runs = vae(latent=1), 8, 40
    with torch.no_grad():
        model.encoder.log_var.bias.add_(1.0)
    x = data(1).expand(200, D)
    phi, _ = groups(model)
    draws: dict[str, list[Tensor]] = {"dreg": [], "iwae": []}
    for run in range(runs):
        for name, loss in (("dreg", DReGIWAELoss(model, k)), ("iwae", IWAELoss(k))):
            g = grads_of(loss, model, x, seed=run)
            draws[name].append(torch.cat([g[n].flatten() for n in phi]))
    dreg, plain = torch.stack(draws["dreg"]), torch.stack(draws["iwae"])
    error = (dreg.var(0) / runs + plain.var(0) / runs).sqrt()
    assert bool(((dreg.mean(0) - plain.mean(0)).abs() < 4 * error + 1e-6).all())
    assert float(dreg.var(0).sum()) < float(plain.var(0).sum())


# --- bounds -----------------------------------------------------------------------------


def exact_log_px(model: VAE, x: Tensor) -> Tensor:
    """log p(x) of a one-dimensional latent, by quadrature."""
    grid = torch.linspace(-12, 12, 2401, dtype=F64)[:, None]
    with torch.no_grad():
        logits = model.decoder.logits(grid)
        log_px_z = model.likelihood.log_prob(logits[:, None].expand(-1, x.shape[0], -1), x)
        joint = log_px_z + model.prior.log_prob(grid)[:, None]
    return torch.logsumexp(joint, 0) + math.log(float(grid[1, 0] - grid[0, 0]))


@pytest.mark.parametrize("prior", [None, "vamp"])
def test_every_bound_is_below_the_exact_log_likelihood(prior: str | None) -> None:
    torch.manual_seed(0)
    model = vae(latent=1, prior=VampPrior(3) if prior else None)
    with torch.no_grad():  # move q off the true posterior: a real gap
        model.encoder.mean.bias.add_(1.0)
        model.encoder.log_var.bias.add_(1.0)
    x = data(1, seed=3)
    exact = float(exact_log_px(model, x))
    reps = 2000
    xs = x.expand(reps, D)
    losses = {
        "miwae": MIWAELoss(4, 2),
        "ciwae": CIWAELoss(8, 0.5),
        "piwae": PIWAELoss(model, 4, 2),
        "dreg": DReGIWAELoss(model, 8),
        "iwae": IWAELoss(8),
    }
    means = {}
    for name, loss in losses.items():
        gen = torch.Generator().manual_seed(11)
        with torch.no_grad():
            out = model(xs, n_samples=loss.n_samples, generator=gen)
        log_w = out.log_px_z + out.log_pz - out.log_qz  # type: ignore[operator]
        per = {
            "miwae": miwae(log_w, 2),
            "ciwae": 0.5 * log_w.mean(0) + 0.5 * iwae(log_w),
        }.get(name, iwae(log_w))
        torch.testing.assert_close(-per.mean(), loss(out, xs).total)
        means[name] = float(per.mean())
        assert means[name] < exact + 3 * float(per.std()) / math.sqrt(reps), (name, exact)
    assert exact - means["miwae"] > 0.05  # a real gap, so the inequalities say something
    assert means["miwae"] < means["iwae"] and means["ciwae"] < means["iwae"]


# --- the Trainer ----------------------------------------------------------------------------

LOSSES = {
    "miwae": lambda m: MIWAELoss(3, 2),
    "piwae": lambda m: PIWAELoss(m, 3, 2),
    "ciwae": lambda m: CIWAELoss(3, 0.5),
    "dreg": lambda m: DReGIWAELoss(m, 3),
}
DATA = torch.rand(32, D, generator=torch.Generator().manual_seed(0))


def trainer(folder: Path, name: str, model: nn.Module | None = None) -> Trainer:
    torch.manual_seed(0)
    model = model or VAE(Encoder(D, 6, 2), Decoder(2, 6, D))
    return Trainer(
        model,
        loss=LOSSES[name](model),
        callbacks=[ModelCheckpoint(folder, keep_last=None)],
        device="cpu",
        seed=0,
        batch_size=8,
    )


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_reach_every_parameter(name: str) -> None:
    for model in (VAE(Encoder(D, 6, 2), Decoder(2, 6, D), prior=MixturePrior(2)), None):
        if name == "dreg" and model is None:
            continue
        model = model or HierarchicalVAE(D, (3, 2), ((6,), (5,)))
        loss = LOSSES[name](model)
        x = DATA[:6]
        loss(model(x, n_samples=loss.n_samples), x).total.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, missing


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, name: str) -> None:
    straight = trainer(tmp_path / "a", name)
    straight.fit(DATA, epochs=3)
    trainer(tmp_path / "b", name).fit(DATA, epochs=1)
    resumed = trainer(tmp_path / "b", name)
    resumed.fit(DATA, epochs=3, resume="last")
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert set(straight.evaluate(DATA)) >= {"loss"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)
def test_ddp_trains_the_hierarchical_model_with_piwae(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import torch
        from torchvae import HierarchicalVAE, PIWAELoss, Trainer
        torch.manual_seed(0)
        model = HierarchicalVAE(4, (3, 2), ((6,), (5,)))
        trainer = Trainer(model, loss=PIWAELoss(model, 3, 2), device="cpu", strategy="ddp",
                          batch_size=8, seed=0)
        trainer.fit(torch.rand(32, 4), epochs=2)
        assert trainer.ddp is not None and trainer.world_size == 1
        print("loss", trainer.history[-1]["loss"])
        """
    )
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(_free_port())
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert math.isfinite(float(done.stdout.split("loss")[-1]))


# --- bad input --------------------------------------------------------------------------------


def test_bad_arguments_are_refused_clearly() -> None:
    model, x = vae(), data()
    with pytest.raises(
        ValueError, match=r"needs 6 samples per example: call model\(x, n_samples=6"
    ):
        MIWAELoss(3, 2)(model(x, n_samples=5), x)
    with pytest.raises(ValueError, match="needs 4 samples"):
        CIWAELoss(4)(model(x), x)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        CIWAELoss(4, beta=1.5)
    with pytest.raises(TypeError, match="beta must be a float"):
        CIWAELoss(4, beta="0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        MIWAELoss(0)
    with pytest.raises(TypeError, match="needs the torchvae VAE"):
        PIWAELoss(nn.Linear(2, 2), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conditional models are not supported"):
        PIWAELoss(ConditionalVAE.mlp(D, 6, 2, num_classes=3), 3)
    with pytest.raises(TypeError, match="shares the top-down networks"):
        DReGIWAELoss(hierarchical(), 3)
    with pytest.raises(ValueError, match="belongs to the model"):
        MIWAELoss(3, likelihood=Gaussian(scale=0.9))(model(x, n_samples=3), x)


def test_without_gradients_the_values_are_the_same() -> None:
    model, x = vae(), data()
    for loss in (PIWAELoss(model, 3, 2), DReGIWAELoss(model, 6)):
        gen = torch.Generator().manual_seed(2)
        with_grad = loss(model(x, n_samples=6, generator=gen), x).total
        with torch.no_grad():
            without = loss(model(x, n_samples=6, generator=gen.manual_seed(2)), x).total
        assert float(with_grad.detach()) == pytest.approx(float(without))
