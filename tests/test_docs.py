"""The documentation site builds in strict mode, its links resolve, and its code runs.

- ``mkdocs build --strict`` succeeds (a broken cross-reference, a missing page, image or
  anchor, or a docstring mkdocstrings cannot render fails it); skipped, with the reason,
  when mkdocs or its plugins are not installed (``pip install -e ".[docs]"``).
- The tutorial notebook is a page (mkdocs-jupyter), with its maths and a download link.
- Every ``href``/``src`` inside the built site resolves (``docs/check_site.py``).
- Every public name of torchvae and of its public modules has an API entry.
- The tutorial's code steps (``docs/snippets/tutorial_*.py``) run, in order, on small fake
  MNIST files.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import torchvae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_checker: Any = _load(DOCS / "check_site.py", "torchvae_docs_check_site")
check_site: Any = _checker.check_site


def _missing_docs_tools() -> str | None:
    tools = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")
    for module in tools:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            return module
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing_docs_tools()
    if missing is not None:
        pytest.skip(f"{missing} is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-5000:]}"
    return out


def test_site_builds_strict(site: Path) -> None:
    for page in ("index.html", "tutorial/index.html", "api/models/index.html"):
        assert (site / page).is_file(), f"{page} is missing from the built site"


def test_notebook_is_a_page_with_its_download(site: Path) -> None:
    page = (site / "notebooks" / "tutorial" / "index.html").read_text(encoding="utf-8")
    assert page.count("jp-CodeCell") > 10, "the notebook's code cells are not on its page"
    assert _checker.notebook_formulas(page) > 10, "the notebook's maths is not on its page"
    assert 'href="tutorial.ipynb"' in page
    assert (site / "notebooks" / "tutorial" / "tutorial.ipynb").is_file()
    tutorial = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    assert 'href="../notebooks/tutorial/"' in tutorial, "the tutorial does not link the notebook"


def test_notebook_formulas_are_counted_as_the_page_script_marks_them() -> None:
    html = (
        '<div class="jp-RenderedMarkdown jp-MarkdownOutput"><p>a $x$ b $$y\nz$$</p>'
        "<p><code>$HOME and $PATH</code> <br>$w$ costs $5</p></div>"
        "<p>$outside$ a cell</p>"
    )
    assert _checker.notebook_formulas(html) == 3


def test_no_internal_link_is_broken(site: Path) -> None:
    report = check_site(site)
    assert report.pages > 20
    assert report.links > 100
    assert not report.problems, "broken links:\n" + "\n".join(map(str, report.problems))


def test_maths_is_marked_and_mathjax_vendored(site: Path) -> None:
    tutorial = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    assert tutorial.count('class="arithmatex"') > 20
    assert "javascripts/tex-svg.js" in tutorial
    api = (site / "api" / "gaussian" / "index.html").read_text(encoding="utf-8")
    assert ":math:" not in api, "a reST :math: role reached the page unconverted"
    assert "\\mathrm{KL}" in api
    assert (site / "javascripts" / "tex-svg.js").stat().st_size > 1_000_000


@pytest.mark.slow
def test_maths_renders_in_a_browser(site: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium to load the pages (apt-get install chromium)")
    pages = [
        "index.html",
        "tutorial/index.html",
        "api/losses/index.html",
        "notebooks/tutorial/index.html",
    ]
    problems = _checker.check_rendering(site, browser, pages)
    assert not problems, "\n".join(map(str, problems))


def test_images_are_small() -> None:
    images = sorted((DOCS / "images").glob("*.png"))
    assert images
    for image in images:
        assert image.stat().st_size < 200_000, f"{image.name} is over 200 KB"


def _documented() -> list[Any]:
    """The objects named by every ``::: identifier`` line of the API pages."""
    found = []
    for page in sorted((DOCS / "api").glob("*.md")):
        for identifier in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE):
            module_name, _, attr = identifier.rpartition(".")
            try:
                found.append(importlib.import_module(identifier))
                continue
            except ImportError:
                pass
            module = importlib.import_module(module_name)
            assert hasattr(module, attr), f"{page.name}: ::: {identifier} names nothing"
            found.append(getattr(module, attr))
    return found


def _public_modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules(torchvae.__path__) if not m.name.startswith("_")]
    # The command line is documented as commands, not as a Python API.
    return [torchvae, *(importlib.import_module(f"torchvae.{n}") for n in names if n != "cli")]


@pytest.mark.parametrize("module", _public_modules(), ids=lambda m: m.__name__)
def test_every_public_name_has_an_api_entry(module: ModuleType) -> None:
    documented = _documented()
    missing = [
        name
        for name in getattr(module, "__all__", [])
        if name != "__version__"
        and not any(getattr(module, name) is obj for obj in documented)
        and not isinstance(getattr(module, name), (int, str, float, tuple))
    ]
    assert not missing, f"no API entry (::: ...) in docs/api/ for {module.__name__}.{missing}"


def _write_idx(path: Path, data: torch.Tensor) -> None:
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def _tutorial_code() -> list[str]:
    """The tutorial's Python blocks in order, with its snippets (``--8<--``) filled in."""
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    code = []
    for block in blocks:
        include = re.fullmatch(r'--8<-- "([^":]+):(\w+)"\n', block)
        if include is None:
            code.append(block)
            continue
        source = (ROOT / include[1]).read_text()
        start, end = f"# --8<-- [start:{include[2]}]\n", f"# --8<-- [end:{include[2]}]"
        code.append(source[source.index(start) + len(start) : source.index(end)])
    assert len(code) >= 7, "the tutorial lost its code blocks"
    return code


def test_tutorial_code_runs(tmp_path: Path) -> None:
    """Every code block of the tutorial, in order, where ./MNIST_DATA holds fake MNIST."""
    data = tmp_path / "MNIST_DATA"
    data.mkdir()
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 200), ("t10k", 100)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        _write_idx(data / f"{split}-images-idx3-ubyte", images)
        _write_idx(data / f"{split}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    code = "\n".join(_tutorial_code())
    assert "range(1, 31)" in code and "epochs=30" in code, "the tutorial trains for 30 epochs"
    code = code.replace("range(1, 31)", "range(1, 3)").replace("epochs=30", "epochs=2")
    script = tmp_path / "tutorial.py"
    script.write_text(code)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TORCHVAE_DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "epoch 2:" in result.stdout
    assert (tmp_path / "samples.png").is_file()
    assert list((tmp_path / "runs" / "vae").glob("events.out.tfevents.*"))
    assert list((tmp_path / "checkpoints").glob("epoch-*.pt"))


def test_rst_roles_extension_converts_maths_and_code() -> None:
    pytest.importorskip("griffe")
    ext = _load(DOCS / "_ext" / "rst_roles.py", "torchvae_docs_rst_roles")
    text = "Intro.\n\n.. math::\n    a = b\n\n    c\n\nAfter.\n\n.. code-block:: text\n\n    raw\n"
    out = ext.convert_directives(text)
    assert out == "Intro.\n\n$$\na = b\n\nc\n$$\n\nAfter.\n\n```text\nraw\n```"
    assert ext.convert_directives("  .. math:: x^2\n  next") == "  $$\n  x^2\n  $$\n\n  next"


def test_cli_page_names_only_real_options() -> None:
    from torchvae.cli import build_parser

    parser = build_parser()
    known = set(parser._option_string_actions)
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():  # type: ignore[union-attr]
            known |= set(sub._option_string_actions)
    page = (DOCS / "howto" / "cli.md").read_text()
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", page))
    assert named, "the CLI page names no options"
    unknown = named - known
    assert not unknown, f"options on the CLI page that torchvae does not have: {unknown}"


def test_home_page_code_runs() -> None:
    text = (DOCS / "index.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/index.md", "exec"), namespace)
    assert namespace["samples"].shape == (64, 784)
