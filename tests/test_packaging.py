"""The test command installs every optional extra, so that each integration is tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parent.parent
# Not needed by any test: the notebook's packages are in dev; psutil only for benchmarks.
NOT_TESTED = {"notebook", "bench"}


def test_the_test_command_installs_every_extra() -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    script = (ROOT / "scripts" / "test.sh").read_text()
    installed = re.search(r'pip install -q -e "\.\[([a-z,_-]+)\]"', script)
    assert installed is not None, "scripts/test.sh installs the package with its extras"
    assert extras - NOT_TESTED <= set(installed.group(1).split(","))


def test_importing_torchvae_imports_no_integration_library() -> None:
    """Lightning, the trackers and the Hub client load only where they are used."""
    import subprocess
    import sys

    code = (
        "import sys, torchvae, torchvae.callbacks, torchvae.cli, torchvae.io; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'lightning', 'pytorch_lightning', 'mlflow', 'wandb', 'huggingface_hub'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]"
