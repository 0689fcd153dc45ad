"""The house rules of imports: the edge and the hub meet only through ``protocols`` (pure wire
formats and the device config schema) and ``common`` (what both daemons run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"hub": {"edge"}, "edge": {"hub"}, "protocols": {"edge", "hub", "common"}, "common": {"edge", "hub"}}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_they_may(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_protocols_does_no_io():
    """``protocols`` is pure: no sockets, files or subprocesses."""
    bad = []
    for path in sorted((ROOT / "protocols").rglob("*.py")):
        for line, name in _imports(path):
            if name.split(".")[0] in ("socket", "subprocess", "shutil", "sqlite3", "paho", "serial", "os"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
        text = path.read_text()
        for call in ("open(", ".read_text(", ".write_text(", ".read_bytes("):
            if call in text:
                bad.append(f"{path.relative_to(ROOT)} calls {call}")
    assert not bad, "\n".join(bad)


def _local_graph(package: Path, dotted: str) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports (relative or absolute)."""
    graph: dict[str, set[str]] = {}
    modules = {p.stem if p.stem != "__init__" else "" for p in package.glob("*.py")}
    for path in package.glob("*.py"):
        name = path.stem if path.stem != "__init__" else ""
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    targets = [node.module or ""] if node.module else [a.name for a in node.names]
                elif node.level == 0 and node.module and node.module.startswith(dotted + "."):
                    targets = [node.module[len(dotted) + 1:].split(".")[0]]
                else:
                    continue
                deps.update(t.split(".")[0] for t in targets if t.split(".")[0] in modules and t != name)
    return graph


@pytest.mark.parametrize("package", ["hub/web", "hub", "edge", "edge/web", "edge/camera", "edge/pillar", "common", "protocols"])
def test_no_import_circles(package):
    graph = _local_graph(ROOT / package, package.replace("/", "."))
    graph = {k: {d for d in v if d} for k, v in graph.items() if k}  # the package's __init__ aside
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError(f"import circle in {package}: {' -> '.join(path + [node])}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for dep in sorted(graph.get(node, ())):
            visit(dep, path + [node])
        seen[node] = 2
    for node in sorted(graph):
        visit(node, [])


@pytest.mark.parametrize("view", ["api", "tickets", "console", "auth"])
def test_hub_views_hold_no_sql(view):
    """Views translate HTTP to domain and read-model calls (hub.readmodel, hub.dispatch, …)."""
    names = [name for _, name in _imports(ROOT / "hub" / "web" / f"{view}.py")]
    assert not any(n.split(".")[0] == "sqlalchemy" for n in names), f"hub/web/{view}.py imports sqlalchemy"
