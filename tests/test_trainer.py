"""Tests of the Trainer: learning, inputs, evaluation, exact resume, NaN handling."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from torchvae._validation import set_validation
from torchvae.callbacks import BetaSchedule, Callback, ModelCheckpoint
from torchvae.io.checkpoint import CheckpointError, load_checkpoint
from torchvae.likelihoods import Bernoulli, Gaussian, Likelihood
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE, VAEOutput
from torchvae.objectives.losses import ELBOLoss, IWAELoss
from torchvae.posteriors import FlowPosterior
from torchvae.priors import FlowPrior, MixturePrior, VampPrior
from torchvae.schedules import Linear
from torchvae.training.trainer import NonFiniteLossError, StepOutput, Trainer

D = 16


def make_model(seed: int = 0, likelihood: Likelihood | None = None) -> VAE:
    torch.manual_seed(seed)
    return VAE(Encoder(D, 8, 2), Decoder(2, 8, D), likelihood=likelihood)


def make_data(n: int = 256, seed: int = 0) -> Tensor:
    """Examples in (0, 1) driven by two latent factors, so that a VAE can learn them."""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(2, D, generator=g) * 3, torch.randn(D, generator=g) * 3
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1))
    return torch.sigmoid(z @ w + b)


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_loss_decreases_on_synthetic_data() -> None:
    data = make_data()
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    trainer = Trainer(model, optimizer=optimizer, device="cpu", seed=0, batch_size=32)
    before = trainer.evaluate(data)["loss"]
    trainer.fit(data, epochs=3)
    after = trainer.evaluate(data)["loss"]
    assert after < before - 1.0
    assert [m["epoch"] for m in trainer.history] == [1, 2, 3]
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    assert trainer.global_step == 3 * 8


def test_evaluate_keys_and_bits_per_dim() -> None:
    data = make_data(100)
    trainer = Trainer(make_model(), loss=ELBOLoss(beta=4.0, free_bits=0.5), device="cpu")
    m = trainer.evaluate(data)
    assert set(m) == {"loss", "reconstruction", "kl", "bits_per_dim"}
    assert math.isclose(m["loss"], m["reconstruction"] + m["kl"], rel_tol=1e-6)
    assert math.isclose(m["bits_per_dim"], m["loss"] / (D * math.log(2)), rel_tol=1e-12)
    # weighted by batch size: uneven batches give the same as one batch (up to the sampled z)
    model = trainer.model
    torch.manual_seed(5)
    whole = trainer.evaluate([data])
    torch.manual_seed(5)
    with torch.no_grad():
        out = model(data)
    assert math.isclose(whole["kl"], float(ELBOLoss()(out, data).kl), rel_tol=1e-5)
    trainer.batch_size = 33
    assert math.isclose(trainer.evaluate(data)["kl"], whole["kl"], rel_tol=1e-5)
    assert model.training


def test_inputs_in_every_form_train() -> None:
    data = make_data(64)
    labels = torch.arange(64) % 3
    forms: list[Any] = [
        data,
        TensorDataset(data),
        TensorDataset(data, labels),
        DataLoader(TensorDataset(data, labels), batch_size=16, shuffle=True),
        [data[:32], data[32:]],
        [[data[:32], labels[:32]], (data[32:], labels[32:])],
    ]
    for form in forms:
        trainer = Trainer(make_model(), device="cpu", batch_size=16)
        trainer.fit(form, val=form, epochs=1)
        assert math.isfinite(trainer.metrics["val_loss"])
        assert trainer.global_step in (2, 4)


def test_integer_batches_are_refused_with_a_hint() -> None:
    trainer = Trainer(make_model(), device="cpu")
    with pytest.raises(TypeError, match=r"uint8.*255"):
        trainer.fit((make_data() * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="batch"):
        trainer.fit([{"x": make_data()}])
    with pytest.raises(TypeError, match="data must be"):
        trainer.fit(3)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"precision": "8"}, ValueError, "precision"),
        ({"precision": "16-mixed", "device": "cpu"}, ValueError, "16-mixed"),
        ({"nan_policy": "ignore"}, ValueError, "nan_policy"),
        ({"grad_clip": -1.0}, ValueError, "grad_clip"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        Trainer(make_model(), **kwargs)


def test_bad_epochs_and_model() -> None:
    with pytest.raises(TypeError, match="model"):
        Trainer("vae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs"):
        Trainer(make_model(), device="cpu").fit(make_data(), epochs=0)


def test_seed_makes_runs_reproducible() -> None:
    runs = []
    for init in (0, 0, 1):
        trainer = Trainer(make_model(init), device="cpu", seed=7, batch_size=32)
        trainer.fit(make_data(), epochs=2)
        runs.append(trainer.model)
    assert params_equal(runs[0], runs[1])
    assert not params_equal(runs[0], runs[2])


def _resume_setup(folder: Path, seed: int = 3, init: int = 0) -> tuple[Trainer, Any, Any]:
    data, val = make_data(96), make_data(40, seed=1)
    model = make_model(init, Gaussian(scale=0.3, learn_scale=True))
    loss = ELBOLoss()
    optimizer = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-2)
    trainer = Trainer(
        model,
        loss,
        optimizer,
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7),
        callbacks=[BetaSchedule(Linear(steps=20)), ModelCheckpoint(folder, keep_last=None)],
        device="cpu",
        seed=seed,
        grad_clip=5.0,
    )
    loader = DataLoader(TensorDataset(data), batch_size=16, shuffle=True)
    return trainer, loader, val


def test_resume_is_exact(tmp_path: Path) -> None:
    full, loader, val = _resume_setup(tmp_path / "full")
    full.fit(loader, val, epochs=4)
    part, loader, val = _resume_setup(tmp_path / "part")
    part.fit(loader, val, epochs=2)
    torch.randn(1000)  # whatever happens in between must not matter
    resumed, loader, val = _resume_setup(tmp_path / "part", seed=99, init=5)
    resumed.fit(loader, val, epochs=4, resume=tmp_path / "part" / "epoch-0002.pt")
    assert params_equal(full.model, resumed.model)
    scales = [t.model.likelihood.log_scale for t in (full, resumed)]  # type: ignore[union-attr]
    assert torch.equal(*scales)
    sa, sb = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in sa["state"].items():
        for name, value in state.items():
            assert torch.equal(value, sb["state"][key][name]), (key, name)
    assert full.scheduler.state_dict() == resumed.scheduler.state_dict()
    assert (full.epoch, full.global_step) == (resumed.epoch, resumed.global_step) == (4, 24)
    untimed = [
        [{k: v for k, v in h.items() if k != "time"} for h in t.history] for t in (full, resumed)
    ]
    assert untimed[0] == untimed[1]
    assert full.loss.beta == resumed.loss.beta


def test_resume_last_with_tensor_data(tmp_path: Path) -> None:
    data = make_data(64)

    def run(epochs: int, resume: str | None) -> Trainer:
        trainer = Trainer(
            make_model(),
            callbacks=[ModelCheckpoint(tmp_path / "run" if resume or epochs < 3 else tmp_path)],
            device="cpu",
            seed=0,
            batch_size=16,
        )
        trainer.fit(data, epochs=epochs, resume=resume)
        return trainer

    full = run(3, None)
    run(1, None)
    assert params_equal(full.model, run(3, "last").model)
    with pytest.raises(FileNotFoundError, match="no epoch"):
        Trainer(make_model(), callbacks=[ModelCheckpoint(tmp_path / "empty")]).fit(
            data, resume="last"
        )
    with pytest.raises(ValueError, match="ModelCheckpoint"):
        Trainer(make_model()).fit(data, resume="last")


def test_validation_does_not_change_the_training_trajectory() -> None:
    models = []
    for val in (None, make_data(50, seed=4)):
        trainer = Trainer(make_model(), device="cpu", seed=0, batch_size=32)
        trainer.fit(make_data(), val, epochs=2)
        models.append(trainer.model)
    assert params_equal(models[0], models[1])


class _PoisonAt(Callback):
    """Put a NaN in the encoder's weights before the given (0-based) step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(trainer.model.parameters())[0, 0] = math.nan


def test_nan_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    trainer = Trainer(
        make_model(),
        callbacks=[_PoisonAt(step=8 + 3), ModelCheckpoint(tmp_path)],
        device="cpu",
        batch_size=32,
    )
    with pytest.raises(NonFiniteLossError, match=r"epoch 2 of 3, batch 4 \(step 12") as info:
        trainer.fit(make_data(), epochs=3)
    assert "epoch-0001.pt" in str(info.value)
    state = load_checkpoint(tmp_path / "epoch-0001.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch-0001.pt"]


def test_nan_without_checkpoint_says_so() -> None:
    trainer = Trainer(make_model(), callbacks=[_PoisonAt(step=0)], device="cpu")
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written"):
        trainer.fit(make_data(64))


def test_non_finite_gradient_with_finite_loss_is_caught() -> None:
    class InfGrad(Callback):
        def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
            p = next(trainer.model.parameters())
            p.register_hook(lambda g: g * math.inf)

    trainer = Trainer(make_model(), callbacks=[InfGrad()], device="cpu")
    before = [p.clone() for p in trainer.model.parameters()]
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        trainer.fit(make_data(64))
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_skip_policy_skips_and_counts() -> None:
    class NanBatches(Callback):
        def __init__(self) -> None:
            self.seen: list[bool] = []

        def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
            self.seen.append(output.skipped)

    data = make_data(128)
    data[40] = math.nan  # batch 2 of 4 holds a NaN
    recorder = NanBatches()
    trainer = Trainer(
        make_model(), callbacks=[recorder], device="cpu", nan_policy="skip", batch_size=32
    )
    set_validation(False)  # let the NaN reach the loss instead of failing the input check
    try:
        trainer.fit([data[i : i + 32] for i in range(0, 128, 32)], epochs=2)
    finally:
        set_validation(True)
    assert recorder.seen == [False, True, False, False] * 2
    assert trainer.skipped_steps == 2
    assert trainer.history[0]["skipped_steps"] == 1
    assert math.isfinite(trainer.history[-1]["loss"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_iwae_loss_gets_n_samples_and_learned_scale_is_optimized() -> None:
    trainer = Trainer(make_model(), IWAELoss(k=3), device="cpu", batch_size=32)
    trainer.fit(make_data(64), epochs=1)
    assert math.isfinite(trainer.metrics["loss"])
    model = make_model(likelihood=Gaussian(learn_scale=True))
    trainer = Trainer(model, ELBOLoss(), device="cpu", batch_size=32)
    before = float(model.likelihood.log_scale.detach())  # type: ignore[union-attr]
    trainer.fit(make_data(64), epochs=1)
    assert float(model.likelihood.log_scale.detach()) != before  # type: ignore[union-attr]


class _Conditional(nn.Module):
    is_conditional = True

    def __init__(self) -> None:
        super().__init__()
        self.vae = make_model()
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, y: Tensor, n_samples: int | None = None) -> VAEOutput:
        self.seen.append(y)
        return self.vae(x, n_samples=n_samples)  # type: ignore[no-any-return]


def test_conditional_models_get_labels_and_require_them() -> None:
    data, labels = make_data(64), torch.arange(64) % 4
    trainer = Trainer(_Conditional(), device="cpu", batch_size=32)
    trainer.fit(TensorDataset(data, labels), epochs=1)
    assert len(trainer.model.seen) == 2  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conditional"):
        trainer.fit(data, epochs=2)


def test_grad_clip_step_scheduler_and_bf16_on_cpu() -> None:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    norms: list[float] = []

    class Norms(Callback):
        def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None:
            norms.append(float(output.grad_norm))
            total = torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()])
            assert float(total) <= 1e-3 * (1 + 1e-4)

    trainer = Trainer(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_interval="step",
        callbacks=[Norms()],
        device="cpu",
        grad_clip=1e-3,
        batch_size=32,
    )
    trainer.fit(make_data(64), epochs=1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)
    assert all(n > 1e-3 for n in norms)
    bf16 = Trainer(make_model(), device="cpu", precision="bf16", batch_size=32)
    bf16.fit(make_data(64), epochs=1)
    assert math.isfinite(bf16.metrics["loss"])


def test_reduce_on_plateau_gets_the_validation_loss() -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters())
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
    trainer = Trainer(model, optimizer=optimizer, scheduler=plateau, device="cpu")
    trainer.fit(make_data(64), make_data(32, seed=2), epochs=2)
    assert plateau.best == min(h["val_loss"] for h in trainer.history)


def test_device_auto_is_cpu_here() -> None:
    trainer = Trainer(make_model())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.device.type in (expected, "mps")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TORCHVAE_TEST_COMPILE"),
    reason="torch.compile on CPU takes minutes here; set TORCHVAE_TEST_COMPILE=1",
)
def test_compile_gives_the_same_kind_of_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config

    # Inductor draws its own random numbers unless told to use eager's: the same z then.
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    trainer = Trainer(make_model(), device="cpu", compile=True, seed=0, batch_size=32)
    trainer.fit(make_data(64), epochs=2)
    eager = Trainer(make_model(), device="cpu", seed=0, batch_size=32)
    eager.fit(make_data(64), epochs=2)
    assert trainer.metrics["loss"] == pytest.approx(eager.metrics["loss"], rel=1e-3)


def test_one_shot_iterables_and_bad_resume_files_are_clear(tmp_path: Path) -> None:
    data = make_data(64)
    with pytest.raises(ValueError, match="no batches in epoch 2"):
        Trainer(make_model(), device="cpu").fit(iter([data]), epochs=2)
    trainer = Trainer(make_model(), callbacks=[ModelCheckpoint(tmp_path)], device="cpu")
    trainer.fit(data, epochs=1)
    path = tmp_path / "epoch-0001.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"epoch-0001\.pt.*truncated"):
        Trainer(make_model(), device="cpu").fit(data, epochs=2, resume=path)


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan])
def test_bad_values_in_a_later_batch_are_named_with_the_step(bad: float) -> None:
    data = torch.rand(48, D)
    data[40, 3] = bad
    batches = [data[0:16], data[16:32], data[32:48]]  # used as given: the third is bad
    trainer = Trainer(make_model(), device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"batch x must lie in \[0, 1\].*epoch 1 of 1, batch 3"):
        trainer.fit(batches, epochs=1)
    assert trainer.global_step == 2


def test_batches_are_read_only_when_their_loader_cannot_vouch_for_them() -> None:
    """uint8 TensorLoader batches are in [0, 1] by construction; float ones are checked."""
    from torchvae.data import TensorLoader

    assert TensorLoader(torch.zeros(4, D, dtype=torch.uint8)).in_unit_interval
    floats = torch.rand(48, D)
    floats[40, 3] = 1.5
    loader = TensorLoader(floats, batch_size=16)
    assert not loader.in_unit_interval
    trainer = Trainer(make_model(), device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"batch x must lie in \[0, 1\].*epoch 1 of 1, batch 3"):
        trainer.fit(loader, epochs=1)
    checked: list[int] = []

    class Counting(Bernoulli):
        def target_ok(self, x: Tensor) -> Tensor:
            checked.append(x.shape[0])
            return super().target_ok(x)

    images = (torch.rand(48, D) * 255).to(torch.uint8)
    Trainer(make_model(likelihood=Counting()), device="cpu").fit(TensorLoader(images), epochs=1)
    assert checked == []
    Trainer(make_model(likelihood=Counting()), device="cpu").fit(images.float() / 255, epochs=1)
    assert checked != []


def test_default_optimizer_is_fused_adam_over_model_and_loss() -> None:
    model, loss = make_model(likelihood=Gaussian(learn_scale=True)), ELBOLoss()
    trainer = Trainer(model, loss, device="cpu")
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    group = trainer.optimizer.param_groups[0]
    assert group["fused"] is True and group["lr"] == 1e-3
    assert len(group["params"]) == len([*model.parameters(), *loss.parameters()])
    custom = torch.optim.Adam(model.parameters())
    assert Trainer(make_model(), optimizer=custom, device="cpu").optimizer is custom


def _denormals_flushed() -> bool:
    return float(torch.tensor(1e-39) * 1.0) == 0.0


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_holds_only_while_fitting(flush: bool) -> None:
    seen: list[bool] = []

    class Probe(Callback):
        def on_train_batch_start(self, trainer: Trainer, x: Tensor) -> None:
            seen.append(_denormals_flushed())

    assert not _denormals_flushed()
    trainer = Trainer(
        make_model(), device="cpu", batch_size=64, callbacks=[Probe()], flush_denormal=flush
    )
    trainer.fit(make_data(128), epochs=1)
    assert seen == [flush, flush]
    assert not _denormals_flushed()  # the process's mode is restored
    # A mode the user set stays set.
    torch.set_flush_denormal(True)
    try:
        trainer.fit(make_data(128), epochs=2)
        assert _denormals_flushed()
    finally:
        torch.set_flush_denormal(False)
    with pytest.raises(TypeError, match="flush_denormal must be a bool"):
        Trainer(make_model(), device="cpu", flush_denormal=1)  # type: ignore[arg-type]


def _parts() -> dict[str, Any]:
    parts: dict[str, Any] = {
        "mixture": {"prior": lambda: MixturePrior(3)},
        "vamp": {"prior": lambda: VampPrior(4)},
        "conditional-vamp": {"prior": lambda: VampPrior(4), "num_classes": 2},
    }
    if importlib.util.find_spec("zuko") is not None:
        parts["flow-prior"] = {"prior": lambda: FlowPrior(1, (6,))}
        parts["flow-posterior"] = {"posterior": lambda: FlowPosterior(1, (6,))}
    return parts


@pytest.mark.parametrize("name", sorted(_parts()))
def test_every_prior_and_posterior_resumes_exactly(name: str, tmp_path: Path) -> None:
    spec = dict(_parts()[name])
    classes = spec.pop("num_classes", None)
    data = make_data(48)
    if classes:
        data = TensorDataset(data, torch.arange(48) % classes)  # type: ignore[assignment]

    def trainer(folder: Path) -> Trainer:
        torch.manual_seed(0)
        width = classes or 0
        model = VAE(
            Encoder(D + width, 8, 2),
            Decoder(2 + width, 8, D),
            num_classes=classes,
            **{k: build() for k, build in spec.items()},
        )
        return Trainer(
            model, callbacks=[ModelCheckpoint(folder)], device="cpu", seed=1, batch_size=16
        )

    full = trainer(tmp_path / "full")
    full.fit(data, epochs=3)
    part = trainer(tmp_path / "part")
    part.fit(data, epochs=2)
    resumed = trainer(tmp_path / "part")
    resumed.fit(data, epochs=3, resume="last")
    assert params_equal(full.model, resumed.model)
    assert resumed.history == [
        {**h, "time": r["time"]} for h, r in zip(full.history, resumed.history, strict=True)
    ]


def test_labels_out_of_range_in_fit_name_the_batch() -> None:
    model = VAE(Encoder(D + 3, 8, 2), Decoder(2 + 3, 8, D), num_classes=3)
    labels = torch.arange(48) % 3
    labels[37] = 3
    data = TensorDataset(make_data(48), labels)
    trainer = Trainer(model, device="cpu", batch_size=16)
    with pytest.raises(
        ValueError,
        match=r"batch y must hold class labels .*got values in \[0, 3\] .*batch 3 \(step 3",
    ):
        trainer.fit(DataLoader(data, batch_size=16), epochs=1)
    with pytest.raises(ValueError, match="the model is conditional"):
        trainer.fit(make_data(48), epochs=1)


class _WithCritic(nn.Module):
    """An ELBO plus a critic on z trained by its own optimizer, as a FactorVAE's would be."""

    def __init__(self) -> None:
        super().__init__()
        self.elbo = ELBOLoss()
        self.critic = nn.Linear(2, 1)

    def aux_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"critic": list(self.critic.parameters())}

    def forward(self, out: VAEOutput, x: Tensor) -> Any:
        base = self.elbo(out, x)
        score = self.critic(out.z).mean()  # a term of the main loss that uses the critic
        critic_loss = (self.critic(out.z.detach()) - 1.0).square().mean()  # detached inputs
        total = base.total + 0.1 * score
        return base._replace(total=total, terms={"score": score}, aux={"critic": critic_loss})


def test_an_objective_with_an_auxiliary_group_gets_its_own_optimizer(tmp_path: Path) -> None:
    loss = _WithCritic()
    trainer = Trainer(make_model(), loss, device="cpu", seed=0, batch_size=32)
    main = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not main & {id(p) for p in loss.critic.parameters()}
    assert set(trainer.aux_optimizers) == {"critic"}
    before = loss.critic.bias.detach().clone()
    trainer.fit(make_data(64), epochs=2)
    # the critic learns its own target (1.0), not the main loss's pull on it
    assert float(loss.critic.bias) != float(before)
    assert "score" in trainer.metrics and math.isfinite(trainer.metrics["score"])
    assert "score" in trainer.evaluate(make_data(32))

    def run(folder: Path, epochs: int, resume: str | None = None) -> Trainer:
        t = Trainer(
            make_model(),
            _WithCritic(),
            callbacks=[ModelCheckpoint(folder)],
            device="cpu",
            seed=0,
            batch_size=32,
        )
        t.fit(make_data(64), epochs=epochs, resume=resume)
        return t

    full, _ = run(tmp_path / "full", 3), run(tmp_path / "part", 2)
    resumed = run(tmp_path / "part", 3, resume="last")
    assert params_equal(full.model, resumed.model) and params_equal(full.loss, resumed.loss)
    with pytest.raises(ValueError, match="optimizers names 'other'"):
        Trainer(make_model(), _WithCritic(), device="cpu", optimizers={"other": trainer.optimizer})
    shared = _WithCritic()
    everything = torch.optim.Adam([*make_model().parameters(), *shared.parameters()])
    with pytest.raises(ValueError, match="holds parameters of the loss's auxiliary groups"):
        Trainer(make_model(), shared, everything, device="cpu")
