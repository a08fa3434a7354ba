"""The tutorial notebook: its two files agree, and it runs top to bottom without an error.

``examples/notebooks/tutorial.py`` (jupytext's percent format) is the file people edit;
``tutorial.ipynb`` is rebuilt from it and stored without outputs. The notebook is executed
headless (nbclient, an ipykernel kernel of this Python, torchvae from this checkout's
``src``) with ``TORCHVAE_NOTEBOOK_QUICK=1``: a few batches, a small latent grid, no
download. Any cell that raises fails the test. Skipped, with the reason, when the notebook
tools are not installed (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebooks" / "tutorial.ipynb"
PAIRED = NOTEBOOK.with_suffix(".py")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
REBUILD = "jupytext --update --to notebook examples/notebooks/tutorial.py"
CELL_TIMEOUT = 300


def _cells(notebook: Any) -> list[tuple[str, str]]:
    return [(cell["cell_type"], cell["source"].strip()) for cell in notebook["cells"]]


def test_ipynb_holds_the_cells_of_the_paired_py() -> None:
    jupytext = pytest.importorskip("jupytext", reason="pip install jupytext")
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat")
    stored = nbformat.read(NOTEBOOK, as_version=4)
    paired = jupytext.read(PAIRED)
    assert _cells(stored) == _cells(paired), f"the .ipynb and the .py differ: run {REBUILD}"
    assert stored.metadata.get("kernelspec", {}).get("language") == "python"
    assert stored.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"


def test_ipynb_is_stored_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(code) > 10
    executed = [i for i, cell in enumerate(code) if cell["outputs"] or cell["execution_count"]]
    assert not executed, f"code cells {executed} hold outputs: run {REBUILD}"


def _write_idx(path: Path, data: torch.Tensor) -> None:
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def _fake_mnist(folder: Path) -> Path:
    """A flat folder with the four MNIST files: 400 training and 200 test images."""
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 400), ("t10k", 200)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        _write_idx(folder / f"{split}-images-idx3-ubyte", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    return folder


def _execute(cwd: Path, data_dir: Path | None) -> Any:
    """Run the notebook in a fresh kernel in ``cwd``; the executed notebook."""
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install nbclient")
    pytest.importorskip("ipykernel", reason="pip install ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    # A kernel spec of our own, so that no kernel installed elsewhere on the machine (with
    # another Python) is picked up, and the kernel's environment is exactly the test's.
    spec_dir = cwd / "kernels" / "torchvae-test"
    spec_dir.mkdir(parents=True)
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "torchvae test",
        "language": "python",
        "env": {
            "PYTHONPATH": path,
            "TORCHVAE_NOTEBOOK_QUICK": "1",
            "TORCHVAE_DATA_DIR": "" if data_dir is None else str(data_dir),
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(cwd / "kernels")], ensure_native_kernel=False)
    manager = AsyncKernelManager(kernel_name="torchvae-test", kernel_spec_manager=specs)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback
    return notebook


def _outputs(notebook: Any) -> tuple[str, int]:
    """All the text the cells printed, and how many pictures they drew."""
    text, pictures = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            text.append(output.get("data", {}).get("text/plain", ""))
            pictures += "image/png" in output.get("data", {})
    return "".join(text), pictures


@pytest.mark.slow
def test_notebook_runs_on_mnist(tmp_path: Path) -> None:
    data = _fake_mnist(tmp_path / "fake_mnist")
    work = tmp_path / "work"
    work.mkdir()
    notebook = _execute(work, data)
    text, pictures = _outputs(notebook)
    assert "quick run: True" in text
    assert "mnist: batches (100, 784)" in text
    assert "epoch 1  loss" in text
    assert pictures >= 8, f"the notebook drew {pictures} pictures, not the 8 it should"
    assert list((work / "runs" / "notebook").glob("events.out.tfevents.*"))
    assert not (work / "MNIST_DATA").exists(), "the quick run tried to download MNIST"


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist package is not installed",
)
def test_notebook_falls_back_to_fashion_mnist(tmp_path: Path) -> None:
    notebook = _execute(tmp_path, None)
    text, _ = _outputs(notebook)
    assert "using Fashion-MNIST instead" in text
    assert "fashion-mnist: batches (100, 784)" in text
