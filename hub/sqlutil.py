"""The one dialect difference the hub's code needs: insert-or-ignore."""

from __future__ import annotations

import sqlalchemy as sa


def insert_ignore(table: sa.Table, dialect: str):
    """``INSERT ... ON CONFLICT DO NOTHING`` for the engine's dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()
