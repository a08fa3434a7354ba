"""Sweep: K stacked models reproduce K separate Trainer runs, resume exactly, refuse clearly."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from torchvae import VAE, Decoder, ELBOLoss, Encoder, Gaussian, Trainer
from torchvae.callbacks import BetaSchedule, Callback, EarlyStopping, StepOutput
from torchvae.io.checkpoint import find_last_checkpoint, load_checkpoint
from torchvae.models import ConditionalVAE, ConvDecoder, ConvEncoder
from torchvae.posteriors import FlowPosterior
from torchvae.priors import MixturePrior
from torchvae.schedules import Linear
from torchvae.training.sweep import Sweep, SweepMember

MEMBERS = [
    SweepMember(0, beta=0.5, lr=1e-3),
    SweepMember(1, beta=2.0, lr=3e-3, free_bits=0.05),
    SweepMember(5, beta=1.0, lr=2e-3, warmup_steps=4),
]


def mlp(seed: int, likelihood: Any = None) -> VAE:
    torch.manual_seed(seed)
    return VAE(Encoder(12, 8, 3), Decoder(3, 8, 12), likelihood=likelihood)


def conv(seed: int) -> VAE:
    torch.manual_seed(seed)
    shape = (1, 8, 8)
    return VAE(ConvEncoder(2, shape, (4, 8)), ConvDecoder(2, shape, (8, 4)))


class Steps(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: Any, output: StepOutput) -> None:
        self.losses.append(float(output.losses.total.detach()))


def trainer_run(
    model: nn.Module, m: SweepMember, x: Tensor, val: Tensor, epochs: int, **kw: Any
) -> tuple[Trainer, list[float]]:
    steps = Steps()
    callbacks: list[Callback] = [steps]
    if m.warmup_steps:
        callbacks.append(BetaSchedule(Linear(steps=m.warmup_steps, end=m.beta)))
    opt = torch.optim.Adam(model.parameters(), lr=m.lr, fused=True)
    trainer = Trainer(
        model,
        ELBOLoss(beta=m.beta, free_bits=m.free_bits),
        opt,
        callbacks=[*callbacks, *kw.pop("callbacks", [])],
        device="cpu",
        seed=m.seed,
        batch_size=10,
        **kw,
    )
    trainer.fit(x, val, epochs=epochs)
    return trainer, steps.losses


def sweep_run(
    models: list[nn.Module], members: list[SweepMember], x: Any, val: Tensor, epochs: int, **kw: Any
) -> tuple[Sweep, list[Tensor]]:
    sweep = Sweep([copy.deepcopy(m) for m in models], members, batch_size=10, device="cpu", **kw)
    steps: list[Tensor] = []
    sweep.fit(x, val, epochs=epochs, on_step=lambda _, losses: steps.append(losses.clone()))
    return sweep, steps


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-5) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=1e-4, msg=k)


@pytest.mark.parametrize(
    "build, data",
    [
        (mlp, lambda: torch.rand(45, 12)),
        (lambda s: mlp(s, Gaussian(scale=0.2, learn_scale=True)), lambda: torch.rand(45, 12)),
        (conv, lambda: torch.rand(45, 1, 8, 8)),
    ],
    ids=["mlp-bernoulli", "mlp-gaussian-learned-scale", "conv"],
)
def test_members_match_separate_trainer_runs(
    build: Callable[[int], VAE], data: Callable[[], Tensor]
) -> None:
    torch.manual_seed(123)
    x, val = data(), data()[:20]
    models: list[nn.Module] = [build(m.seed) for m in MEMBERS]
    sweep, steps = sweep_run(models, MEMBERS, x, val, epochs=3)
    assert len(steps) == 15  # 45 examples in batches of 10, 3 epochs
    for i, m in enumerate(MEMBERS):
        trainer, losses = trainer_run(copy.deepcopy(models[i]), m, x, val, epochs=3)
        torch.testing.assert_close(
            torch.stack(steps)[:, i], torch.tensor(losses), rtol=1e-5, atol=1e-5
        )
        for mine, theirs in zip(sweep.history[i], trainer.history, strict=True):
            for key in ("loss", "reconstruction", "kl", "val_loss", "val_kl", "beta"):
                assert mine[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-5), key
        assert_same_weights(sweep.model(i), trainer.model)


def test_one_learning_rate_for_all_members_matches_too() -> None:
    """All members at one lr take the single fused call over the stacked tensors."""
    members = [SweepMember(s, beta=b) for s, b in ((0, 1.0), (1, 0.5))]
    x, val = torch.rand(30, 12), torch.rand(10, 12)
    models: list[nn.Module] = [mlp(m.seed) for m in members]
    sweep, _ = sweep_run(models, members, x, val, epochs=2)
    for i, m in enumerate(members):
        trainer, _ = trainer_run(copy.deepcopy(models[i]), m, x, val, epochs=2)
        assert_same_weights(sweep.model(i), trainer.model)


def test_resume_from_checkpoints_is_exact(tmp_path: Path) -> None:
    members = [SweepMember(s, beta=b, lr=lr, folder=tmp_path / f"m{s}") for s, b, lr in
               ((0, 1.0, 1e-3), (1, 2.0, 2e-3))]  # fmt: skip
    x, val = torch.rand(30, 12), torch.rand(10, 12)
    models: list[nn.Module] = [mlp(m.seed) for m in members]
    whole, _ = sweep_run(models, [SweepMember(m.seed, m.beta, m.lr) for m in members], x, val, 4)
    sweep_run(models, members, x, val, epochs=2)
    assert find_last_checkpoint(tmp_path / "m1" / "checkpoints") is not None
    resumed = Sweep([copy.deepcopy(m) for m in models], members, batch_size=10, device="cpu")
    resumed.fit(x, val, epochs=4, resume=True)
    assert resumed.epochs_done == [4, 4]
    for i in range(2):
        for k, v in whole.model(i).state_dict().items():
            assert torch.equal(v, resumed.model(i).state_dict()[k]), k
        assert [h["loss"] for h in resumed.history[i]] == [h["loss"] for h in whole.history[i]]
    state = load_checkpoint(find_last_checkpoint(tmp_path / "m0" / "checkpoints"))
    assert state["epoch"] == 4 and state["optimizer"]["param_groups"][0]["lr"] == 1e-3
    board = tmp_path / "m0" / "tensorboard"  # its own TensorBoard run, with its hyper-parameters
    assert any(p.name.startswith("events.") for p in board.iterdir())
    assert (board / "hparams").is_dir()


def test_a_checkpoint_resumes_as_a_trainer_run(tmp_path: Path) -> None:
    """A member's checkpoint is in the Trainer's format: a Trainer continues it exactly."""
    m = SweepMember(3, beta=1.0, lr=1e-3, folder=tmp_path / "m")
    x, val = torch.rand(30, 12), torch.rand(10, 12)
    model = mlp(3)
    sweep_run([model], [m], x, val, epochs=2)
    alone, _ = trainer_run(copy.deepcopy(model), m, x, val, epochs=3)
    steps = Steps()
    trainer = Trainer(copy.deepcopy(model), ELBOLoss(), callbacks=[steps], device="cpu", seed=3,
                      batch_size=10)  # fmt: skip
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=1e-3, fused=True)
    trainer.fit(x, val, epochs=3, resume=tmp_path / "m" / "checkpoints")
    assert_same_weights(trainer.model, alone.model)


def test_early_stopping_stops_each_member_as_a_trainer_would() -> None:
    members = [SweepMember(0), SweepMember(1, lr=2e-3)]
    x, val = torch.rand(30, 12), torch.rand(10, 12)
    models: list[nn.Module] = [mlp(m.seed) for m in members]
    sweep, _ = sweep_run(models, members, x, val, epochs=6, patience=1, min_delta=1e9)
    assert sweep.epochs_done == [2, 2] and not sweep.active
    for i, m in enumerate(members):
        stop = EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9)
        trainer, _ = trainer_run(copy.deepcopy(models[i]), m, x, val, 6, callbacks=[stop])
        assert trainer.epoch == 2
        assert_same_weights(sweep.model(i), trainer.model)


def test_loaders_one_per_member() -> None:
    from torchvae.data import TensorLoader

    images = torch.randint(0, 256, (30, 12), dtype=torch.uint8)
    members = [SweepMember(0), SweepMember(1, beta=0.5)]
    loaders = [TensorLoader(images, batch_size=10, shuffle=True, seed=m.seed) for m in members]
    models: list[nn.Module] = [mlp(m.seed) for m in members]
    sweep, _ = sweep_run(models, members, loaders, images[:10].float() / 255, epochs=2)
    for i, m in enumerate(members):
        loader = TensorLoader(images, batch_size=10, shuffle=True, seed=m.seed)
        trainer, _ = trainer_run(copy.deepcopy(models[i]), m, loader, images[:10].float() / 255, 2)
        assert_same_weights(sweep.model(i), trainer.model)


class Dropping(nn.Module):
    latent_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.net, self.drop = nn.Linear(12, 6), nn.Dropout(0.5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.drop(self.net(x))
        return h[:, :3], h[:, 3:]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ConditionalVAE.mlp(12, 8, 3, 4), "ConditionalVAE"),
        (lambda: VAE(Encoder(12, 8, 3), Decoder(3, 8, 12), prior=MixturePrior(3)), "MixturePrior"),
        (lambda: VAE(Encoder(12, 8, 3), Decoder(3, 8, 12), posterior=FlowPosterior()), "Flow"),
        (lambda: VAE(Dropping(), Decoder(3, 8, 12)), "vmap"),
    ],
    ids=["conditional", "mixture-prior", "flow-posterior", "random-layer"],
)
def test_unsupported_models_are_refused_by_name(
    make: Callable[[], nn.Module], message: str
) -> None:
    try:
        model = make()
    except ImportError:  # the flow posterior needs the flows extra
        pytest.skip("zuko is not installed")
    with pytest.raises(ValueError, match=message):
        Sweep([model, copy.deepcopy(model)], [SweepMember(0), SweepMember(1)], device="cpu").fit(
            torch.rand(20, 12)
        )


def test_other_architectures_and_bad_members_are_refused() -> None:
    with pytest.raises(ValueError, match="another architecture"):
        Sweep([mlp(0), VAE(Encoder(12, 6, 3), Decoder(3, 6, 12))], [SweepMember(0), SweepMember(1)])
    with pytest.raises(ValueError, match="2 models for 1 members"):
        Sweep([mlp(0), mlp(1)], [SweepMember(0)])
    with pytest.raises(ValueError, match="lr"):
        SweepMember(0, lr=0.0)
    with pytest.raises(ValueError, match="no checkpoint"):
        Sweep([mlp(0)], [SweepMember(0)], device="cpu").fit(torch.rand(20, 12), resume=True)


def test_bad_data_and_divergence_are_named() -> None:
    sweep = Sweep([mlp(0), mlp(1)], [SweepMember(0), SweepMember(1)], batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="support"):
        sweep.fit(torch.rand(20, 12) * 3)
    from torchvae.training.trainer import NonFiniteLossError

    huge = Sweep([mlp(0), mlp(1)], [SweepMember(0), SweepMember(1, lr=1e30)], batch_size=10,
                 device="cpu")  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="seed 1"):
        huge.fit(torch.rand(40, 12), epochs=5)
