"""The graph-ready training step (training/_graphs.py), checked on the CPU.

A CUDA graph cannot be recorded without a GPU; what can be checked here is the logic around
it: which trainers may capture their step, that the graph-ready step (no host
synchronisation, fused Adam skipping its own update on the finiteness flag) computes
exactly what the eager step does, also across a skipped non-finite batch, a ragged last
batch and a resume, and that a CPU fit falls back to the eager step and says why.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import torchvae.training.trainer as trainer_module
from torchvae import VAE, Decoder, Encoder, NonFiniteLossError, Trainer
from torchvae.callbacks import ModelCheckpoint
from torchvae.objectives.losses import ELBOLoss
from torchvae.training._graphs import GraphStep, _settings, graph_blocker, total_norm


def _model() -> VAE:
    torch.manual_seed(0)
    return VAE(Encoder(12, 8, 3), Decoder(3, 8, 12))


def _data(n: int = 100) -> Tensor:
    return torch.rand(n, 12, generator=torch.Generator().manual_seed(1))


def _graph_ready(monkeypatch: pytest.MonkeyPatch) -> list[GraphStep]:
    """Make every fit use the graph-ready step without recording (what a GPU would replay)."""
    made: list[GraphStep] = []

    def make(*args: Any, **kwargs: Any) -> GraphStep:
        made.append(GraphStep(*args, **kwargs, capture=False))
        return made[-1]

    monkeypatch.setattr(trainer_module, "GraphStep", make)
    return made


def _same_state(a: Trainer, b: Trainer) -> None:
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        for field in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[key][field], sb[key][field]), (key, field)


def test_cpu_fit_runs_eagerly_and_says_why() -> None:
    trainer = Trainer(_model(), device="cpu", seed=0, batch_size=32)
    assert trainer.cuda_graph_status == "eager: not fitted yet"
    trainer.fit(_data(), epochs=1)
    assert trainer.cuda_graph_status == "eager: the device is cpu, not CUDA"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: setattr(t, "cuda_graph", False), "cuda_graph=False"),
        (lambda t: setattr(t, "compiled", True), "compile=True"),
        (lambda t: setattr(t, "scheduler_interval", "step"), "changes every step"),
        (
            lambda t: setattr(t, "optimizer", torch.optim.SGD(t.model.parameters(), lr=0.1)),
            "not torch's fused Adam",
        ),
        (
            lambda t: setattr(t, "optimizer", torch.optim.Adam(t.model.parameters())),
            "not torch's fused Adam",
        ),
        (lambda t: t.optimizer.register_step_post_hook(lambda *a: None), "step hooks"),
        (lambda t: setattr(t, "aux_optimizers", {"d": t.optimizer}), "auxiliary"),
    ],
)
def test_graph_blocker_names_what_stands_in_the_way(change: Any, reason: str) -> None:
    scheduler_model = _model()
    trainer = Trainer(scheduler_model, device="cpu", seed=0)
    trainer.device = torch.device("cuda")  # as if on a GPU: the other rules decide
    trainer.scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, 1)
    assert graph_blocker(trainer) is None  # default: fused Adam, fp32, one process
    change(trainer)
    found = graph_blocker(trainer)
    assert found is not None and reason in found


def test_graph_ready_step_computes_what_the_eager_step_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = _data(100)  # batches of 32, 32, 32 and a ragged 4
    eager = Trainer(_model(), device="cpu", seed=0, batch_size=32)
    eager.fit(x, epochs=3)
    made = _graph_ready(monkeypatch)
    ready = Trainer(_model(), device="cpu", seed=0, batch_size=32)
    ready.fit(x, epochs=3)
    _same_state(eager, ready)
    assert eager.history == [
        {**h, "time": e["time"]} for h, e in zip(ready.history, eager.history, strict=True)
    ]
    assert made[0].replays == 3 * 3  # the full batches; the ragged ones ran eagerly
    assert ready.global_step == eager.global_step == 12


_MARK = 0.123456


class _FlakyLoss(ELBOLoss):
    """The ELBO, but NaN on batches whose first value is ``_MARK`` (valid data)."""

    def forward(self, out: Any, x: Tensor) -> Any:
        losses = super().forward(out, x)
        scale = torch.where(x[0, 0] == _MARK, float("nan"), 1.0)
        return losses._replace(total=losses.total * scale)


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_non_finite_step_is_skipped_by_the_optimizer_itself(
    monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    good = _data(96)
    flaky = good[32:64].clone()
    flaky[0, 0] = _MARK
    batches = [good[:32], flaky, good[64:]]

    def run(graph_ready: bool) -> tuple[Trainer, BaseException | None]:
        if graph_ready:
            _graph_ready(monkeypatch)
        t = Trainer(_model(), _FlakyLoss(), device="cpu", seed=0, nan_policy=policy)  # type: ignore[arg-type]
        try:
            t.fit(batches, epochs=2)
        except NonFiniteLossError as e:
            return t, e
        return t, None

    eager, e1 = run(False)
    ready, e2 = run(True)
    _same_state(eager, ready)
    assert (e1 is None) == (e2 is None) == (policy == "skip")
    if policy == "skip":
        assert eager.skipped_steps == ready.skipped_steps == 2
        state = ready.optimizer.state_dict()["state"][0]
        assert float(state["step"]) == 4  # the skipped steps did not count
    else:
        assert e2 is not None and "batch 2" in str(e2)
        assert float(ready.optimizer.state_dict()["state"][0]["step"]) == 1


def test_graph_ready_resume_is_exact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _graph_ready(monkeypatch)
    x = _data(100)
    straight = Trainer(_model(), device="cpu", seed=0, batch_size=32)
    straight.fit(x, epochs=3)

    def checkpointed() -> Trainer:
        saver = ModelCheckpoint(tmp_path, keep_last=None)
        return Trainer(_model(), callbacks=[saver], device="cpu", seed=0, batch_size=32)

    checkpointed().fit(x, epochs=1)
    resumed = checkpointed()
    resumed.fit(x, epochs=3, resume="last")
    _same_state(straight, resumed)


def test_settings_follow_what_a_graph_would_hold_as_constants() -> None:
    loss = ELBOLoss()
    trainer = Trainer(_model(), loss, device="cpu", seed=0)
    before = _settings(trainer)
    assert _settings(trainer) == before
    loss.beta = 0.5
    after_beta = _settings(trainer)
    assert after_beta != before
    trainer.optimizer.param_groups[0]["lr"] = 1e-4
    assert _settings(trainer) != after_beta


def test_cuda_graph_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="cuda_graph must be a bool"):
        Trainer(_model(), device="cpu", cuda_graph="yes")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to record a graph")
def test_cuda_graph_replays_what_eager_computes() -> None:
    x = _data(100).cuda()
    eager = Trainer(_model(), device="cuda", seed=0, batch_size=32, cuda_graph=False)
    eager.fit(x, epochs=3)
    graphed = Trainer(_model(), device="cuda", seed=0, batch_size=32)
    graphed.fit(x, epochs=3)
    assert graphed.cuda_graph_status == "captured"
    for p, q in zip(eager.model.parameters(), graphed.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_graph_step_partial_is_a_graph_step() -> None:
    made = functools.partial(GraphStep, capture=False)
    trainer = Trainer(_model(), device="cpu", seed=0)
    step = made(trainer, list(trainer.model.parameters()))
    assert step.reason is None and step.status == "eager: not captured yet"


@pytest.mark.parametrize("clip", [None, 0.5])
def test_total_norm_is_torchs(clip: float | None) -> None:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s)) for s in ((3, 4), (5,), (2, 2))]
    for p in params:
        p.grad = torch.randn_like(p)
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for p, q in zip(params, copies, strict=True):
        q.grad = p.grad.clone()  # type: ignore[union-attr]
    found = total_norm(params, clip)
    if clip is None:
        expected = torch.nn.utils.get_total_norm([q.grad for q in copies])
    else:
        expected = torch.nn.utils.clip_grad_norm_(copies, clip)
    assert torch.equal(found, expected)
    for p, q in zip(params, copies, strict=True):
        assert torch.equal(p.grad, q.grad)  # type: ignore[arg-type]
