"""The hub's schema: the database the migrations build is exactly what ``hub.schema`` describes
(Alembic's compare_metadata, on SQLite and PostgreSQL), and no migration imports live code."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.schema import metadata

VERSIONS = Path(__file__).resolve().parent.parent / "hub" / "migrations" / "versions"


def test_the_migrated_database_matches_the_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], "\n".join(map(str, diff))


def test_migrations_are_frozen():
    for path in sorted(VERSIONS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    assert name.split(".")[0] in ("sqlalchemy", "alembic", "__future__"), \
                        f"{path.name} imports {name}: a migration must not change when live code does"
