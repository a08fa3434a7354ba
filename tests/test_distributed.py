"""The Trainer under torchrun: two CPU processes with gloo on this machine.

One launch of ``tests/_train_script.py`` runs several phases (see its docstring); the test
then reads what each rank saved. It checks that the ranks end with identical weights, that
the reported loss is the mean over the ranks' own losses, that only rank 0 writes
checkpoints, that a resume under torchrun ends where an uninterrupted run does, and that a
``DataLoader`` and a ``TensorLoader`` are split between the ranks.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn

from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.training._batches import TensorBatches
from torchvae.training.trainer import Trainer

SCRIPT = Path(__file__).with_name("_train_script.py")
N = 99  # odd: the trainer pads each rank to 50 examples

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)


def _equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Launch the phases once; return each phase's per-rank results."""
    folder = tmp_path_factory.mktemp("ddp")
    phases = ["full:3", "part:2", "part:3:resume", "dl:2:dataloader:val", "tl:2:tensorloader"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(SCRIPT), "--dir", str(folder), "--examples", str(N)]
    for phase in phases:
        command += ["--phase", phase]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, list[dict[str, Any]]] = {}
    for phase in phases:
        name, epochs = phase.split(":")[:2]
        results[f"{name}:{epochs}"] = [
            torch.load(folder / f"{name}-{epochs}-rank{r}.pt", weights_only=True) for r in (0, 1)
        ]
    results["files"] = [{"names": sorted(p.name for p in (folder / "full").iterdir())}]
    return results


def test_ranks_end_with_identical_weights(ranks: dict[str, list[dict[str, Any]]]) -> None:
    for phase in ("full:3", "part:3", "dl:2", "tl:2"):
        r0, r1 = ranks[phase]
        assert r0["ddp"] and r0["world_size"] == 2, phase
        assert _equal(r0["model"], r1["model"]), phase
        assert _untimed(r0["history"]) == _untimed(r1["history"]), phase
        assert r0["local"] != r1["local"], f"{phase}: the ranks saw the same examples"


def test_reported_loss_is_the_mean_over_ranks(ranks: dict[str, list[dict[str, Any]]]) -> None:
    for phase in ("full:3", "dl:2", "tl:2"):
        r0, r1 = ranks[phase]
        assert r0["counts"] == r1["counts"] == [math.ceil(N / 2)] * len(r0["counts"]), phase
        for epoch, metrics in enumerate(r0["history"]):
            mean = (r0["local"][epoch] + r1["local"][epoch]) / 2
            assert metrics["loss"] == pytest.approx(mean, rel=1e-6, abs=0), (phase, epoch)


def test_validation_and_evaluate_agree_across_ranks(
    ranks: dict[str, list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks["dl:2"]
    assert all("val_loss" in h for h in r0["history"])
    assert r0["evaluate"] == r1["evaluate"]
    assert math.isfinite(r0["evaluate"]["loss"])


def test_only_rank_zero_writes_checkpoints(ranks: dict[str, list[dict[str, Any]]]) -> None:
    r0, r1 = ranks["full:3"]
    assert [Path(p).name for p in r0["saved"]] == [f"epoch-000{e}.pt" for e in (1, 2, 3)]
    assert r1["saved"] == []
    assert ranks["files"][0]["names"] == ["best.pt", *(f"epoch-000{e}.pt" for e in (1, 2, 3))]


def test_resume_under_torchrun_is_exact(ranks: dict[str, list[dict[str, Any]]]) -> None:
    full, resumed = ranks["full:3"], ranks["part:3"]
    for rank in (0, 1):
        assert _equal(full[rank]["model"], resumed[rank]["model"]), rank
    assert _untimed(full[0]["history"]) == _untimed(resumed[0]["history"])


def test_tensor_shards_cover_the_data_once_per_epoch() -> None:
    data = torch.arange(10.0)
    shards = [
        TensorBatches([data], batch_size=3, shuffle=True, rank=r, world_size=3, seed=5)
        for r in range(3)
    ]
    for epoch in (0, 1):
        seen = []
        for shard in shards:
            shard.set_epoch(epoch)
            seen.append(torch.cat(list(shard)))  # type: ignore[arg-type]
        assert [len(s) for s in seen] == [4, 4, 4]  # padded to equal lengths
        assert sorted(set(torch.cat(seen).tolist())) == data.tolist()
    unpadded = [
        torch.cat(list(TensorBatches([data], 3, False, r, 3, pad=False)))  # type: ignore[arg-type]
        for r in range(3)
    ]
    assert sorted(torch.cat(unpadded).tolist()) == data.tolist()


def test_strategy_ddp_without_a_launcher_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    model: nn.Module = VAE(Encoder(4, 4, 2), Decoder(2, 4, 4))
    with pytest.raises(ValueError, match="torchrun"):
        Trainer(model, device="cpu", strategy="ddp")
    with pytest.raises(ValueError, match="strategy"):
        Trainer(model, device="cpu", strategy="dp")  # type: ignore[arg-type]
    monkeypatch.setenv("WORLD_SIZE", "2")
    trainer = Trainer(model, device="cpu", strategy="none")  # ignores the launcher
    assert (trainer.rank, trainer.world_size, trainer.ddp, trainer.is_global_zero) == (
        0,
        1,
        None,
        True,
    )
