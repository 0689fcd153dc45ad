"""The audit log: who did or saw what, when."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from .schema import audit_log


def record(engine: sa.Engine, actor: str, action: str, obj: str | None = None,
           detail: dict[str, Any] | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(audit_log.insert().values(actor=actor, action=action, object=obj, detail=detail, at=time.time()))


def rows(engine: sa.Engine, *, action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if action:
        query = query.where(audit_log.c.action == action)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
