"""The house's rules, checked on the source: no import circles, arrows that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "torchvae"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports() -> dict[str, set[str]]:
    """Each module's imports of torchvae modules run at import time (not the ones under
    ``if TYPE_CHECKING:`` or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        package = name if _is_package(path) else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If):  # if TYPE_CHECKING: ...
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if not target.startswith("torchvae"):
                    continue
                if node.module is None:  # from . import module: that module, not the package
                    found |= {f"{target}.{alias.name}" for alias in node.names}
                else:
                    found.add(target)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("torchvae")}
        graph[name] = found
    known = set(graph)
    return {m: {t for t in ts if t in known and t != m} for m, ts in graph.items()}


def _below(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for t in graph[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_no_import_circles_between_modules() -> None:
    graph = _imports()
    # An edge into a package is one into its __init__ (which re-exports its modules), so a
    # module that imports its own package by name closes a circle.
    circles = sorted(m for m in graph if m in _below(graph, m) and not m.endswith("__main__"))
    assert circles == [], f"modules in an import circle: {circles}"


@pytest.mark.parametrize(
    "lower",
    ["torchvae.models", "torchvae.data", "torchvae.priors", "torchvae.likelihoods", "torchvae.io"],
)
def test_models_and_data_know_nothing_of_the_trainer(lower: str) -> None:
    graph = _imports()
    upper = ("torchvae.training", "torchvae.callbacks", "torchvae.cli")
    bad = {
        m: sorted(t for t in _below(graph, m) if t.startswith(upper))
        for m in graph
        if m == lower or m.startswith(lower + ".")
    }
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_the_file_format_knows_no_model() -> None:
    graph = _imports()
    for m in ("torchvae.io.registry", "torchvae.io._format"):
        assert not any(t.startswith("torchvae.models") for t in _below(graph, m)), m
