"""Every disentangling objective (but FactorVAE, tested by hand) trains in the Trainer and
resumes from a checkpoint exactly: the loss's state is in the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from torchvae.callbacks import ModelCheckpoint
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.objectives.capacity import CapacityLoss
from torchvae.objectives.dipvae import DIPVAELoss
from torchvae.objectives.mmd import InfoVAELoss, WAELoss
from torchvae.objectives.tcvae import BetaTCVAELoss
from torchvae.training.trainer import Trainer

D, N = 16, 48

OBJECTIVES: dict[str, Callable[[], nn.Module]] = {
    "capacity": lambda: CapacityLoss(gamma=50.0, c_max=5.0, steps=4),
    "btcvae-mss": lambda: BetaTCVAELoss(dataset_size=N, beta=4.0),
    "btcvae-mws": lambda: BetaTCVAELoss(dataset_size=N, beta=4.0, estimator="mws"),
    "dip-i": lambda: DIPVAELoss("i", lambda_od=2.0),
    "dip-ii": lambda: DIPVAELoss("ii", lambda_od=2.0),
    "infovae": lambda: InfoVAELoss(alpha=0.5, lambda_=50.0),
    "wae": lambda: WAELoss(lambda_=10.0),
}


def data() -> Tensor:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, D, generator=g) * 3
    return torch.sigmoid(torch.randn(N, 2, generator=g) @ w)


def trainer(folder: Path, objective: str) -> Trainer:
    torch.manual_seed(0)
    model = VAE(Encoder(D, 8, 3), Decoder(3, 8, D))
    return Trainer(
        model,
        OBJECTIVES[objective](),
        callbacks=[ModelCheckpoint(folder)],
        device="cpu",
        seed=1,
        batch_size=16,
    )


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_trains_and_resumes_exactly(objective: str, tmp_path: Path) -> None:
    x = data()
    full = trainer(tmp_path / "full", objective)
    before = full.evaluate(x)["loss"]
    full.fit(x, epochs=3)
    assert full.evaluate(x)["loss"] != before
    part = trainer(tmp_path / "part", objective)
    part.fit(x, epochs=2)
    torch.randn(100)  # whatever happens in between must not matter
    resumed = trainer(tmp_path / "part", objective)
    resumed.fit(x, epochs=3, resume="last")
    for (name, p), q in zip(full.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q), name
    state, again = full.loss.state_dict(), resumed.loss.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert [{k: v for k, v in h.items() if k != "time"} for h in full.history] == [
        {k: v for k, v in h.items() if k != "time"} for h in resumed.history
    ]


def test_the_capacity_ramp_resumes_where_it_stopped(tmp_path: Path) -> None:
    x = data()
    part = trainer(tmp_path, "capacity")
    part.fit(x, epochs=1)
    assert int(part.loss.step) == 3  # 48 examples in batches of 16
    resumed = trainer(tmp_path, "capacity")
    resumed.fit(x, epochs=2, resume="last")
    assert int(resumed.loss.step) == 6
    assert resumed.loss.capacity == 5.0  # type: ignore[operator]
