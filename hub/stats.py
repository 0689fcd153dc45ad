"""Dispatch statistics per town and per grid. The formulas are shown on the statistics page:

- 处置到位率 (handled rate) = handled ÷ counted, where handled = resolved, verified or archived and
  counted = all tickets except void and merged ones.
- 按时处置率 (on-time rate) = resolved in time ÷ (resolved + open tickets already past their
  resolve deadline): open overdue tickets count against it.
- median minutes to accept (created → accepted) and to resolve (created → resolved).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from .access import ticket_filter
from .db import areas, grids, tickets

HANDLED = ("resolved", "verified", "archived")
NOT_COUNTED = ("void", "merged")
FORMULAS = {
    "handled_rate": "处置到位率 = (处置完毕 + 核查通过 + 归档) ÷ (全部 − 作废 − 合并) / handled ÷ (all − void − merged)",
    "on_time_rate": "按时处置率 = 按时处置 ÷ (已处置 + 超时未处置) / resolved in time ÷ (resolved + open overdue)",
    "median_accept_min": "受理用时中位数 (分钟) / median minutes from report to accept",
    "median_resolve_min": "处置用时中位数 (分钟) / median minutes from report to resolve",
}


def _figures(rows: list[dict[str, Any]], now: float) -> dict[str, Any]:
    counted = [t for t in rows if t["state"] not in NOT_COUNTED]
    handled = [t for t in counted if t["state"] in HANDLED]
    resolved = [t for t in counted if t["resolved_at"] is not None]
    on_time = [t for t in resolved if t["resolve_due"] is None or t["resolved_at"] <= t["resolve_due"]]
    overdue_open = [t for t in counted if t["resolved_at"] is None and t["state"] not in HANDLED
                    and t["resolve_due"] is not None and t["resolve_due"] < now]
    accept_min = [(t["accepted_at"] - t["created_at"]) / 60 for t in counted if t["accepted_at"]]
    resolve_min = [(t["resolved_at"] - t["created_at"]) / 60 for t in resolved]
    return {
        "tickets": len(counted), "handled": len(handled), "resolved": len(resolved), "on_time": len(on_time),
        "open_overdue": len(overdue_open),
        "handled_rate": len(handled) / len(counted) if counted else None,
        "on_time_rate": len(on_time) / (len(resolved) + len(overdue_open)) if resolved or overdue_open else None,
        "median_accept_min": statistics.median(accept_min) if accept_min else None,
        "median_resolve_min": statistics.median(resolve_min) if resolve_min else None,
    }


def compute(engine: sa.Engine, prefix: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Figures for the whole scope, per town and per grid."""
    now = time.time() if now is None else now
    cols = [tickets.c[k] for k in ("state", "created_at", "accepted_at", "resolved_at", "resolve_due",
                                   "grid_code", "village_code")]
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(*cols).where(ticket_filter(prefix))).mappings()]
        names = {r.code: r.name for r in conn.execute(sa.select(areas.c.code, areas.c.name))}
        names.update({r.code: r.name for r in conn.execute(sa.select(grids.c.code, grids.c.name))})
    by_town: dict[str, list] = defaultdict(list)
    by_grid: dict[str, list] = defaultdict(list)
    for t in rows:
        village = t["village_code"] or ""
        by_town[village[:9] + "000" if village else "—"].append(t)
        by_grid[t["grid_code"] or "—"].append(t)
    return {
        "total": _figures(rows, now),
        "towns": [{"code": c, "name": names.get(c, c), **_figures(v, now)} for c, v in sorted(by_town.items())],
        "grids": [{"code": c, "name": names.get(c, c), **_figures(v, now)} for c, v in sorted(by_grid.items())],
        "formulas": FORMULAS,
    }


def counts_by_state(engine: sa.Engine, prefix: str | None = None) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tickets.c.state, sa.func.count()).where(ticket_filter(prefix))
                            .group_by(tickets.c.state)).all()
    return {state: n for state, n in rows}
