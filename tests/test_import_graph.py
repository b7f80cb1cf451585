"""The import graph of ``wsi_engine`` keeps its layers (docs/adr/0001-store-as-contract.md).

Read from the source (AST, imports inside functions included), not from
``sys.modules``: a lazy import is an edge all the same.

* no import cycle between packages (``wsi_engine.<package>``) nor between modules;
* nothing imports another package's private modules or names (``_name``);
* a stage package whose ``__init__`` declares ``__all__`` is used by the
  other stages only through those names, never by reaching into a submodule
  (``mil`` declares none: its submodules are its documented API);
* ``slide`` does not import ``store`` (the store builds on slide ids);
* orchestration sits on top: only the command layer imports ``commands`` and
  ``pipeline``; stages and libraries never do.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "wsi_engine"
STAGE_PACKAGES = {"tiling", "encoders", "mil", "patch", "heatmap"}
KNOWN_CYCLES: list[list[str]] = []
"""Package cycles that exist and are to be removed (none left: keep it empty)."""
KNOWN_MODULE_CYCLES: list[list[str]] = []
"""Module cycles that exist and are to be removed (none left: keep it empty)."""
LOWER = {"slide": {"store"}}
"""Packages a package must not import: the store is named after slide ids (``slide.ids``), so
``store`` builds on ``slide``, never the reverse."""
ORCHESTRATION = {"commands": {"cli", "commands"}, "pipeline": {"cli", "commands", "pipeline"}}


@dataclass(frozen=True)
class Edge:
    source: str
    """importing module, e.g. ``wsi_engine.encoders.embed``"""
    target: str
    """imported module (a package's ``__init__`` is the package name)"""
    name: str | None
    """name imported from ``target`` (None for ``import target`` or a submodule)"""
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}" + (
            f".{self.name}" if self.name else ""
        )


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _targets(
    module: str, path: Path, node: ast.Import | ast.ImportFrom
) -> list[tuple[str, str | None]]:
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    out = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        out.append((full, None) if full in modules() else (base, alias.name))
    return out


@cache
def edges() -> tuple[Edge, ...]:
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target, name in _targets(module, path, node):
                    if target == "wsi_engine" or target.startswith("wsi_engine."):
                        found.append(Edge(module, target, name, node.lineno))
    return tuple(found)


def package(module: str) -> str:
    """``wsi_engine.tiling.grid`` → ``tiling``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def public_names(package_name: str) -> set[str]:
    """The ``__all__`` of ``wsi_engine.<package_name>`` (read from its AST)."""
    tree = ast.parse(modules()[f"wsi_engine.{package_name}"].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def test_the_graph_is_read():
    assert len(modules()) > 100
    assert any(e.source == "wsi_engine.pipeline.run" for e in edges())
    # a lazy import inside a function counts
    assert any(
        e.source == "wsi_engine.pipeline.run" and e.target.startswith("wsi_engine.mil")
        for e in edges()
    )


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for edge in edges():
        source, target = package(edge.source), package(edge.target)
        if source and target and source != target:
            graph.setdefault(source, set()).add(target)
    found = [c for c in cycles(graph) if c not in KNOWN_CYCLES]
    assert all(c in cycles(graph) for c in KNOWN_CYCLES), "a known cycle is gone: delete it"
    detail = [
        str(e)
        for e in edges()
        for cycle in found
        if package(e.source) in cycle
        and package(e.target) in cycle
        and package(e.source) != package(e.target)
    ]
    assert not found, f"package cycles {found}:\n" + "\n".join(detail)


def test_no_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for edge in edges():
        if edge.target in modules() and edge.target != edge.source:
            graph.setdefault(edge.source, set()).add(edge.target)
    found = cycles(graph)
    assert all(c in found for c in KNOWN_MODULE_CYCLES), "a known cycle is gone: delete it"
    assert [c for c in found if c not in KNOWN_MODULE_CYCLES] == []


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def test_no_import_of_another_package_s_private_modules_or_names():
    bad = [
        str(e)
        for e in edges()
        if package(e.source) != package(e.target)
        and (any(_private(p) for p in e.target.split(".")) or _private(e.name or ""))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("stage", sorted(STAGE_PACKAGES))
def test_stages_use_each_other_only_through_the_public_api(stage):
    bad = []
    for e in edges():
        source, target = package(e.source), package(e.target)
        if source not in STAGE_PACKAGES or target != stage or source == target:
            continue
        if not public_names(target):
            continue
        if e.target != f"wsi_engine.{target}":
            bad.append(f"{e} (a submodule: import it from wsi_engine.{target})")
        elif e.name is not None and e.name not in public_names(target):
            bad.append(f"{e} (not in wsi_engine.{target}.__all__)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(ORCHESTRATION))
def test_orchestration_is_imported_only_from_above(layer):
    allowed = ORCHESTRATION[layer]
    bad = [
        str(e)
        for e in edges()
        if package(e.target) == layer
        and (package(e.source) or e.source) not in allowed
        and e.source != "wsi_engine.__main__"
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source", sorted(LOWER))
def test_lower_packages_do_not_import_upper_ones(source):
    bad = [
        str(e)
        for e in edges()
        if package(e.source) == source and package(e.target) in LOWER[source]
    ]
    assert not bad, "\n".join(bad)
