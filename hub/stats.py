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

from .access import ticket_filter
from .areas import AreaCode
from .schema import areas, grids, tickets

HANDLED = ("resolved", "verified", "archived")
NOT_COUNTED = ("void", "merged")
FORMULAS = {
    "handled_rate": "处置到位率 = (处置完毕 + 核查通过 + 归档) ÷ (全部 − 作废 − 合并) / handled ÷ (all − void − merged)",
    "on_time_rate": "按时处置率 = 按时处置 ÷ (已处置 + 超时未处置) / resolved in time ÷ (resolved + open overdue)",
    "median_accept_min": "受理用时中位数 (分钟) / median minutes from report to accept",
    "median_resolve_min": "处置用时中位数 (分钟) / median minutes from report to resolve",
}


_SUMS = ("tickets", "handled", "resolved", "on_time", "open_overdue")


def _median_sorted(values: list[float]) -> float | None:
    n = len(values)
    if not n:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


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


def _merge_by_grid(rows) -> list[dict[str, Any]]:
    """One row per grid key (a ticket without a grid counts under its village)."""
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = r["grid_code"] or r["village"] or ""
        row = merged.setdefault(key, {"grid": key, "village": r["village"], **dict.fromkeys(_SUMS, 0)})
        row["village"] = row["village"] or r["village"]
        for k in _SUMS:
            row[k] += int(r[k])
    return list(merged.values())


def compute(engine: sa.Engine, prefix: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Figures for the whole scope, per town and per grid: counts summed by the database per
    grid and rolled up here; medians by the database on PostgreSQL, here on SQLite (which has
    no percentile function)."""
    now = time.time() if now is None else now
    t = tickets.c
    counted = t.state.not_in(NOT_COUNTED)
    one = sa.literal(1)

    def count_if(cond):
        return sa.func.coalesce(sa.func.sum(sa.case((cond, one), else_=0)), 0)
    sums_q = sa.select(
        t.grid_code.label("grid_code"), t.village_code.label("village"),
        count_if(counted).label("tickets"),
        count_if(t.state.in_(HANDLED)).label("handled"),
        count_if(sa.and_(counted, t.resolved_at.is_not(None))).label("resolved"),
        count_if(sa.and_(counted, t.resolved_at.is_not(None),
                         sa.or_(t.resolve_due.is_(None), t.resolved_at <= t.resolve_due))).label("on_time"),
        count_if(sa.and_(counted, t.resolved_at.is_(None), t.state.not_in(HANDLED), t.resolve_due < now))
        .label("open_overdue"),
    ).where(ticket_filter(prefix)).group_by(t.grid_code, t.village_code)  # the index's order: no sort
    with engine.connect() as conn:
        per_grid = _merge_by_grid(conn.execute(sums_q).mappings())
        if conn.dialect.name == "postgresql":
            medians = _medians_in_sql(conn, prefix)
        else:
            medians = _medians_in_python(conn, prefix, per_grid)
        names = {r.code: r.name for r in conn.execute(sa.select(areas.c.code, areas.c.name))}
        names.update({r.code: r.name for r in conn.execute(sa.select(grids.c.code, grids.c.name))})
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_SUMS, 0))
    for row in per_grid:
        for key in (row["grid"], "town:" + town(row["village"]), "*"):
            for k in _SUMS:
                sums[key][k] += int(row[k])
    towns = sorted({town(row["village"]) for row in per_grid})
    return {
        "total": _rates(sums["*"], medians.get("*")),
        "towns": [{"code": c, "name": names.get(c, c), **_rates(sums["town:" + c], medians.get("town:" + c))}
                  for c in towns],
        "grids": [{"code": row["grid"] or "—", "name": names.get(row["grid"], row["grid"]),
                   **_rates(sums[row["grid"]], medians.get(row["grid"]))}
                  for row in sorted(per_grid, key=lambda r: r["grid"])],
        "formulas": FORMULAS,
    }


Medians = dict[str, tuple[float | None, float | None]]  # key -> (accept, resolve) minutes


def town(village: str | None) -> str:
    return AreaCode.parse(village).chain()["town"] if village else "—"


def _durations(prefix: str | None):
    """Minutes to accept and to resolve of counted tickets (a resolved ticket has always been
    accepted: resolve needs handling, which needs acceptance)."""
    t = tickets.c
    grid_key = sa.func.coalesce(t.grid_code, t.village_code, "")  # no grid: counted under its village
    return (grid_key, (t.accepted_at - t.created_at) / 60, (t.resolved_at - t.created_at) / 60,
            sa.and_(ticket_filter(prefix), t.state.not_in(NOT_COUNTED), t.accepted_at.is_not(None)))


def _medians_in_sql(conn: sa.Connection, prefix: str | None) -> Medians:
    """PostgreSQL: percentile_cont per grid, per town and overall in one grouping-sets query."""
    grid_key, accept, resolve, where = _durations(prefix)
    t = tickets.c
    town_key = sa.case((t.village_code.is_(None), "—"), else_=sa.func.substr(t.village_code, 1, 9) + "000")
    q = sa.select(grid_key.label("g"), town_key.label("tw"), sa.func.grouping(grid_key).label("gg"),
                  sa.func.grouping(town_key).label("gt"),
                  sa.func.percentile_cont(0.5).within_group(accept).label("ma"),
                  sa.func.percentile_cont(0.5).within_group(resolve).label("mr")) \
        .where(where).group_by(sa.func.grouping_sets(sa.tuple_(grid_key), sa.tuple_(town_key), sa.tuple_()))
    out: Medians = {}
    for r in conn.execute(q).mappings():
        key = r["g"] if not r["gg"] else ("town:" + r["tw"] if not r["gt"] else "*")
        out[key] = (r["ma"], r["mr"])
    return out


def _medians_in_python(conn: sa.Connection, prefix: str | None, per_grid: list[dict[str, Any]]) -> Medians:
    grid_key, accept, resolve, where = _durations(prefix)
    acc: dict[str, list[float]] = defaultdict(list)
    res: dict[str, list[float]] = defaultdict(list)
    for grid, a, r in conn.execute(sa.select(grid_key, accept, resolve).where(where)):
        acc[grid].append(a)
        if r is not None:
            res[grid].append(r)
    grid_town = {row["grid"]: "town:" + town(row["village"]) for row in per_grid}
    for lists in (acc, res):
        for grid in list(lists):
            lists[grid].sort()
            lists[grid_town.get(grid, "town:—")].extend(lists[grid])
            lists["*"].extend(lists[grid])
        for key in [k for k in lists if k.startswith("town:") or k == "*"]:
            lists[key].sort()  # concatenated sorted runs: timsort merges them in near-linear time
    return {key: (_median_sorted(acc[key]), _median_sorted(res.get(key, []))) for key in acc}


def counts_by_state(engine: sa.Engine, prefix: str | None = None) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tickets.c.state, sa.func.count()).where(ticket_filter(prefix))
                            .group_by(tickets.c.state)).all()
    return {state: n for state, n in rows}
