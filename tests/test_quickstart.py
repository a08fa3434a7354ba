"""scripts/quickstart.sh offline: installs Debian's Fashion-MNIST when it can, else says how.

The script runs for real (bash) in a copy of the repository whose ``.venv`` holds stubs:
``python`` cannot find MNIST (as offline) and ``torchvae`` records its arguments. A
``PATH`` of stubs stands for ``apt-get`` and ``id``, so that nothing is installed and no
network is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _run(
    tmp_path: Path, uid: int, apt: str | None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    repo, bin_dir, log = tmp_path / "repo", tmp_path / "bin", tmp_path / "calls.log"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "quickstart.sh", repo / "scripts" / "quickstart.sh")
    fashion = tmp_path / "debian-fashion-mnist"
    # pip install: fine; `python -c` (loading MNIST, with download): fails, as offline
    _stub(repo / ".venv" / "bin" / "python", 'case "$1" in -m) exit 0;; *) exit 1;; esac')
    _stub(repo / ".venv" / "bin" / "torchvae", f'echo "torchvae $*" >> "{log}"')
    for tool in ("dirname", "rmdir", "mkdir", "touch"):  # the script's and the stubs'
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).parent.mkdir(parents=True, exist_ok=True)
        (bin_dir / tool).symlink_to(found)
    _stub(bin_dir / "id", f"echo {uid}")
    if apt is not None:
        _stub(bin_dir / "apt-get", f'echo "apt-get $*" >> "{log}"\n{apt}')
    env = {"PATH": str(bin_dir), "DEBIAN_FASHION": str(fashion), "HOME": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, str(repo / "scripts" / "quickstart.sh"), "--epochs", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, log


@pytest.mark.skipif(os.name != "posix", reason="a bash script")
def test_as_root_with_apt_it_installs_fashion_mnist_and_says_so(tmp_path: Path) -> None:
    fashion = tmp_path / "debian-fashion-mnist"
    done, log = _run(tmp_path, 0, apt=f'[ "$1" = install ] && mkdir -p "{fashion}"; exit 0')
    assert done.returncode == 0, done.stderr
    assert "installing Fashion-MNIST with: apt-get install dataset-fashion-mnist" in done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get install -y -q dataset-fashion-mnist"
    assert calls[-1] == f"torchvae train --dataset fashion-mnist --data-dir {fashion} --epochs 1"


@pytest.mark.skipif(os.name != "posix", reason="a bash script")
def test_a_fresh_machine_gets_its_package_lists_updated_first(tmp_path: Path) -> None:
    fashion = tmp_path / "debian-fashion-mnist"
    apt = (
        f'if [ "$1" = update ]; then touch "{tmp_path}/updated"; exit 0; fi\n'
        f'[ -e "{tmp_path}/updated" ] || exit 100\nmkdir -p "{fashion}"'
    )
    done, log = _run(tmp_path, 0, apt=apt)
    assert done.returncode == 0, done.stderr
    assert [c.split()[1] for c in log.read_text().splitlines()[:3]] == [
        "install",
        "update",
        "install",
    ]


@pytest.mark.skipif(os.name != "posix", reason="a bash script")
def test_without_root_it_prints_the_one_command(tmp_path: Path) -> None:
    done, log = _run(tmp_path, 1000, apt="exit 0")
    assert done.returncode == 1
    assert "    sudo apt-get install dataset-fashion-mnist\n" in done.stderr
    assert not log.exists()  # neither apt-get nor torchvae ran


@pytest.mark.skipif(os.name != "posix", reason="a bash script")
@pytest.mark.parametrize("apt", [None, "exit 100"], ids=["no-apt", "apt-fails"])
def test_otherwise_it_says_where_to_put_the_files(tmp_path: Path, apt: str | None) -> None:
    done, log = _run(tmp_path, 0, apt=apt)
    assert done.returncode == 1
    assert "./MNIST_DATA" in done.stderr and "Traceback" not in done.stderr
    assert ("failed (its output is above)" in done.stderr) == (apt is not None)
    assert "torchvae train" not in (log.read_text() if log.exists() else "")
