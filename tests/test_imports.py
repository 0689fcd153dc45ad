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
