"""The statistics page's figures, kept current by each ticket change instead of recomputed
over every ticket per request.

- ``ticket_stats``: per grid (a ticket without a grid counts under its village) the sums the
  rates need, and the grid's median minutes to accept and to resolve;
- ``ticket_durations``: per grid, how many tickets took each whole minute to be accepted and
  to be resolved (the grid's medians are recomputed from it when its tickets change: a grid has
  a few hundred tickets);
- ``area_durations``: the same per town and for the whole county (``*``), in buckets of 1%
  above 100 minutes, so that a town's or the county's median is read from a few hundred rows
  (exact to the minute below 100 minutes, within 1% above).

A change adds the new row's contribution and takes away the old one's in the change's own
transaction, so the figures never disagree with the tickets. ``rebuild`` computes everything
from the tickets; ``ensure_built`` runs it once after the migration that made the tables."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from .areas import AreaCode
from .schema import area_durations, meta, ticket_durations, ticket_stats, tickets
from .sqlutil import insert_ignore

HANDLED = ("resolved", "verified", "archived")
NOT_COUNTED = ("void", "merged")
SUMS = ("tickets", "handled", "resolved", "on_time")
CLOCKS = ("accept", "resolve")
ALL = "*"
BUILT_KEY = "ticket_stats_built"


def grid_key(row: dict[str, Any]) -> str:
    return row.get("grid_code") or row.get("village_code") or ""


def town_of(key: str) -> str:
    """The town code of a grid or village key ("" for a ticket without a place)."""
    return AreaCode.parse(key).chain().get("town", "") if key else ""


def minute_of(seconds: float) -> int:
    """Whole minutes, half up."""
    return math.floor(seconds / 60 + 0.5)


def bucket(minute: int) -> int:
    """The minute an area histogram files ``minute`` under: itself below 100, else the nearest
    step of a 1% ladder (100, 101, 102, …, 1000, 1010, …)."""
    if minute < 100:
        return minute
    return round(100 * 1.01 ** round(math.log(minute / 100) / math.log(1.01)))


def median(histogram: dict[int, int] | list[tuple[int, int]]) -> float | None:
    """The median of a multiset of minutes given as {minute: count} or [(minute, count)]."""
    items = sorted(histogram.items() if isinstance(histogram, dict) else histogram)
    n = sum(c for _, c in items)
    if n <= 0:
        return None
    wanted, found, seen = sorted({(n - 1) // 2, n // 2}), [], 0
    for minute, count in items:
        while wanted and wanted[0] < seen + count:
            found.append(minute)
            wanted.pop(0)
        seen += count
        if not wanted:
            break
    return sum(found) / len(found)


def _contribution(row: dict[str, Any] | None) -> tuple[str, str | None, dict[str, int], list[tuple[str, int]]]:
    if row is None:
        return "", None, dict.fromkeys(SUMS, 0), []
    counted = row["state"] not in NOT_COUNTED
    resolved = counted and row.get("resolved_at") is not None
    sums = {"tickets": int(counted), "handled": int(row["state"] in HANDLED), "resolved": int(resolved),
            "on_time": int(resolved and (row.get("resolve_due") is None or row["resolved_at"] <= row["resolve_due"]))}
    durations = []
    if counted and row.get("accepted_at") is not None:
        durations.append(("accept", minute_of(row["accepted_at"] - row["created_at"])))
        if row.get("resolved_at") is not None:
            durations.append(("resolve", minute_of(row["resolved_at"] - row["created_at"])))
    return grid_key(row), row.get("village_code"), sums, durations


def _bump(conn: sa.Connection, table: sa.Table, keys: dict[str, Any], column: str, delta: int,
          blank: dict[str, Any]) -> None:
    """``column += delta`` on the row with ``keys``, made first if missing (portable upsert)."""
    conn.execute(insert_ignore(table, conn.dialect.name).values(**keys, **blank))
    where = sa.and_(*(table.c[k] == v for k, v in keys.items()))
    conn.execute(table.update().where(where).values({column: table.c[column] + delta}))


def apply(conn: sa.Connection, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    """Move the figures from ticket row ``old`` to ``new`` (None: no ticket before / after)."""
    deltas: dict[tuple[str, str | None], dict[str, int]] = {}
    grid_hist: dict[tuple[str, str, int], int] = defaultdict(int)
    for sign, row in ((-1, old), (1, new)):
        if row is None:
            continue
        key, village, sums, durations = _contribution(row)
        d = deltas.setdefault((key, village), dict.fromkeys(SUMS, 0))
        for k in SUMS:
            d[k] += sign * sums[k]
        for clock, minute in durations:
            grid_hist[(key, clock, minute)] += sign
    blank_stats = dict.fromkeys(SUMS, 0)
    for (key, village), d in deltas.items():
        changes = {k: v for k, v in d.items() if v}
        if changes:
            conn.execute(insert_ignore(ticket_stats, conn.dialect.name).values(grid_key=key, village_code=village,
                                                                              **blank_stats))
            conn.execute(ticket_stats.update().where(ticket_stats.c.grid_key == key)
                         .values({k: ticket_stats.c[k] + v for k, v in changes.items()}))
    area_hist: dict[tuple[str, str, int], int] = defaultdict(int)
    touched: set[tuple[str, str]] = set()
    for (key, clock, minute), n in grid_hist.items():
        if not n:
            continue
        _bump(conn, ticket_durations, {"grid_key": key, "clock": clock, "minute": minute}, "n", n, {"n": 0})
        touched.add((key, clock))
        for area in (town_of(key), ALL):
            area_hist[(area, clock, bucket(minute))] += n
    for (area, clock, minute), n in area_hist.items():
        if n:
            _bump(conn, area_durations, {"area_key": area, "clock": clock, "minute": minute}, "n", n, {"n": 0})
    for key, clock in touched:
        _store_grid_median(conn, key, clock)


def _store_grid_median(conn: sa.Connection, key: str, clock: str) -> None:
    h = ticket_durations.c
    rows = conn.execute(sa.select(h.minute, h.n).where(h.grid_key == key).where(h.clock == clock)
                        .where(h.n > 0)).all()
    conn.execute(ticket_stats.update().where(ticket_stats.c.grid_key == key)
                 .values({f"median_{clock}": median([(r.minute, r.n) for r in rows])}))


def rebuild(conn: sa.Connection) -> None:
    """Compute the three tables from the tickets (in the caller's transaction)."""
    t = tickets.c
    sums: dict[str, dict[str, Any]] = {}
    grid_hist: dict[tuple[str, str, int], int] = defaultdict(int)
    area_hist: dict[tuple[str, str, int], int] = defaultdict(int)
    for row in conn.execute(sa.select(t.grid_code, t.village_code, t.state, t.created_at, t.accepted_at,
                                      t.resolved_at, t.resolve_due)).mappings():
        key, village, contribution, durations = _contribution(dict(row))
        s = sums.setdefault(key, {"grid_key": key, "village_code": village, **dict.fromkeys(SUMS, 0)})
        for k in SUMS:
            s[k] += contribution[k]
        for clock, minute in durations:
            grid_hist[(key, clock, minute)] += 1
            for area in (town_of(key), ALL):
                area_hist[(area, clock, bucket(minute))] += 1
    per_grid: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for (key, clock, minute), n in grid_hist.items():
        per_grid[(key, clock)].append((minute, n))
    for key, s in sums.items():
        s["median_accept"] = median(per_grid.get((key, "accept"), []))
        s["median_resolve"] = median(per_grid.get((key, "resolve"), []))
    for table in (ticket_stats, ticket_durations, area_durations):
        conn.execute(table.delete())
    if sums:
        conn.execute(ticket_stats.insert(), list(sums.values()))
    if grid_hist:
        conn.execute(ticket_durations.insert(), [{"grid_key": k, "clock": c, "minute": m, "n": n}
                                                 for (k, c, m), n in grid_hist.items()])
    if area_hist:
        conn.execute(area_durations.insert(), [{"area_key": a, "clock": c, "minute": m, "n": n}
                                               for (a, c, m), n in area_hist.items()])
    conn.execute(meta.delete().where(meta.c.key == BUILT_KEY))
    conn.execute(meta.insert().values(key=BUILT_KEY, value="1"))


def ensure_built(engine: sa.Engine) -> None:
    """Build the figures once (after the migration that made their tables)."""
    with engine.begin() as conn:
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == BUILT_KEY)).scalar() is None:
            rebuild(conn)
