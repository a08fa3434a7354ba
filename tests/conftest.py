"""Shared test configuration: hypothesis profiles, torch threads, small fixtures.

Hypothesis profiles (choose with the environment variable ``HYPOTHESIS_PROFILE``):

- ``dev`` (the default locally): 25 examples per property, no deadline.
- ``ci`` (the default when ``CI`` is set): 10 examples, no deadline, derandomized so a
  run is reproducible and never flaky.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from torchvae.data import _idx

settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The models under test are tiny: one thread avoids oversubscribing shared CPUs, where
# several pytest processes may run at once.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same global random state."""
    torch.manual_seed(0)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network, no ``TORCHVAE_DATA_DIR``, a private cwd (``tmp_path/cwd``) and an empty
    Debian folder (``tmp_path/debian-fashion-mnist``): the data are only where a test puts
    them. Returns ``tmp_path``."""

    def no_network(url: str) -> bytes:
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(_idx, "_fetch", no_network)
    monkeypatch.delenv("TORCHVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(_idx, "_DEBIAN_FASHION_MNIST", tmp_path / "debian-fashion-mnist")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path
