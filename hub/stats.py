"""Dispatch statistics per town and per grid. The formulas are shown on the statistics page:

- 处置到位率 (handled rate) = handled ÷ counted, where handled = resolved, verified or archived and
  counted = all tickets except void and merged ones.
- 按时处置率 (on-time rate) = resolved in time ÷ (resolved + open tickets already past their
  resolve deadline): open overdue tickets count against it.
- median minutes to accept (created → accepted) and to resolve (created → resolved).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from . import ticketstats
from .access import ticket_filter
from .areas import prefix_filter
from .dispatch import OPEN_STATES
from .schema import area_durations, areas, grids, ticket_durations, ticket_stats, tickets

HANDLED = ticketstats.HANDLED
NOT_COUNTED = ticketstats.NOT_COUNTED
_SUMS = (*ticketstats.SUMS, "open_overdue")


def _rates(sums: dict[str, int], medians: tuple[float | None, float | None] | None) -> dict[str, Any]:
    denominator = sums["resolved"] + sums["open_overdue"]
    accept, resolve = medians or (None, None)
    return {
        **sums,
        "handled_rate": sums["handled"] / sums["tickets"] if sums["tickets"] else None,
        "on_time_rate": sums["on_time"] / denominator if denominator else None,
        "median_accept_min": accept,
        "median_resolve_min": resolve,
    }


def compute(engine: sa.Engine, prefix: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Figures for the whole scope, per town and per grid, from what each ticket change keeps
    current (hub.ticketstats): per-grid sums and medians, per-town and county histograms. Only
    "open and overdue" depends on the time of asking; it is counted from the open tickets (an
    index on state and resolve deadline)."""
    now = time.time() if now is None else now
    t, st = tickets.c, ticket_stats.c
    key = sa.func.coalesce(t.grid_code, t.village_code, "")
    overdue_q = (sa.select(key.label("k"), sa.func.count().label("n"))
                 .where(t.state.in_([x for x in OPEN_STATES if x not in HANDLED]))
                 .where(t.resolve_due < now).where(t.resolved_at.is_(None)).where(ticket_filter(prefix))
                 .group_by(key))
    with engine.connect() as conn:
        per_grid = [dict(r) for r in conn.execute(sa.select(ticket_stats).where(prefix_filter(prefix, st.grid_key)))
                    .mappings()]
        overdue = {r.k: int(r.n) for r in conn.execute(overdue_q)}
        area_hist = _area_histograms(conn, prefix)
        names = {r.code: r.name for r in conn.execute(sa.select(areas.c.code, areas.c.name))}
        names.update({r.code: r.name for r in conn.execute(sa.select(grids.c.code, grids.c.name))})
    by_key = {r["grid_key"]: {"grid": r["grid_key"], "village": r["village_code"], "open_overdue": 0,
                              "medians": (r["median_accept"], r["median_resolve"]),
                              **{k: int(r[k]) for k in ticketstats.SUMS}} for r in per_grid}
    for k, n in overdue.items():
        row = by_key.setdefault(k, {"grid": k, "village": k[:12] or None, "medians": (None, None),
                                    **dict.fromkeys(_SUMS, 0)})
        row["open_overdue"] = n
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_SUMS, 0))
    for row in by_key.values():
        for k in (row["grid"], "town:" + town(row["village"]), "*"):
            for name in _SUMS:
                sums[k][name] += row[name]

    def medians(k: str) -> tuple[float | None, float | None]:
        return (ticketstats.median(area_hist.get((k, "accept"), {})),
                ticketstats.median(area_hist.get((k, "resolve"), {})))
    towns = sorted({town(row["village"]) for row in by_key.values()})
    return {
        "total": _rates(sums["*"], medians("*")),
        "towns": [{"code": c, "name": names.get(c, c), **_rates(sums["town:" + c], medians("town:" + c))}
                  for c in towns],
        "grids": [{"code": row["grid"] or "—", "name": names.get(row["grid"], row["grid"]),
                   **_rates(sums[row["grid"]], row["medians"])}
                  for row in sorted(by_key.values(), key=lambda r: r["grid"])],
    }


def _area_histograms(conn: sa.Connection, prefix: str | None) -> dict[tuple[str, str], dict[int, int]]:
    """{("town:<code>" or "*", clock): {minute: count}} for the scope: the per-town and county
    histograms when the scope is the county or a town, else the scope's own grids' (a village
    or a grid has few tickets)."""
    out: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    if prefix is None or len(prefix) <= 9:
        a = area_durations.c
        query = sa.select(a.area_key, a.clock, a.minute, a.n).where(a.n > 0)
        if prefix is not None:
            query = query.where(a.area_key.startswith(prefix, autoescape=True))
        for area, clock, minute, n in conn.execute(query):
            if area == ticketstats.ALL:
                if prefix is None:
                    out[("*", clock)][minute] += n
                continue
            out[("town:" + (area or "—"), clock)][minute] += n
            if prefix is not None:  # the scope's total: its towns together
                out[("*", clock)][minute] += n
        return out
    h = ticket_durations.c
    for grid, clock, minute, n in conn.execute(sa.select(h.grid_key, h.clock, h.minute, h.n)
                                               .where(prefix_filter(prefix, h.grid_key)).where(h.n > 0)):
        out[("town:" + town(grid[:12] or None), clock)][minute] += n
        out[("*", clock)][minute] += n
    return out


def town(village: str | None) -> str:
    return ticketstats.town_of(village or "") or "—"


def counts_by_state(engine: sa.Engine, prefix: str | None = None) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tickets.c.state, sa.func.count()).where(ticket_filter(prefix))
                            .group_by(tickets.c.state)).all()
    return {state: n for state, n in rows}
