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
