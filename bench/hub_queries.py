"""Hub pages and ticket transitions at county scale.

Generates (once, cached between runs) a county of 10 towns, 100 villages, 500 grids, 5,000
devices, 1,000,000 events and 100,000 tickets with their transitions, then measures:
- ticket transitions per second (accept → start → resolve through ``hub.dispatch.act``, one
  transaction each, as the API and the pages run them);
- p95 of every console page as a county admin, through the Flask app (no network): the
  dashboard, the queue board (filtered; by SLA time left), the statistics page, the devices
  page (all; offline ones), the map, a ticket, a device and the registry; and the largest
  page's size. Target: every page p95 <= 200 ms.

Usage: python bench/hub_queries.py [--db sqlite|postgres] [--requests 40] [--fresh]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from hub import auth, dispatch, ticketstats  # noqa: E402
from hub.db import make_engine, migrate  # noqa: E402
from hub.schema import (areas, devices, events, grids, meta, ticket_transitions,  # noqa: E402
                         tickets, users)
from hub.web import create_app  # noqa: E402

CACHE = Path.home() / ".cache" / "xueliang-bench"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "xl_bench_hub"
N_EVENTS, N_TICKETS = 1_000_000, 100_000
STATE_MIX = [("dispatched", 0.15), ("accepted", 0.1), ("handling", 0.1), ("resolved", 0.1), ("verified", 0.05),
             ("archived", 0.45), ("void", 0.05)]


def engine_for(db: str, fresh: bool) -> sa.Engine:
    if db == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / "hub-sqlite.db"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        return make_engine(f"sqlite:///{path}")
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_DB}).first()
        if exists and fresh:
            conn.execute(sa.text(f'DROP DATABASE "{PG_DB}" WITH (FORCE)'))
            exists = None
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    return make_engine(PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB)


def generate(engine: sa.Engine) -> None:
    rng = random.Random(2026)
    with engine.connect() as conn:
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == "bench_generated")).scalar():
            print("using the cached data set", flush=True)
            return
    t0 = time.perf_counter()
    county = "330102000000"
    area_rows = [{"code": county, "name": "基准区", "level": "county", "parent_code": None}]
    grid_rows, device_rows = [], []
    for t in range(1, 11):
        town = f"330102{t:03d}000"
        area_rows.append({"code": town, "name": f"镇{t}", "level": "town", "parent_code": county})
        for v in range(1, 11):
            village = f"330102{t:03d}{v:03d}"
            area_rows.append({"code": village, "name": f"村{t}-{v}", "level": "village", "parent_code": town})
            for g in range(1, 6):
                grid_rows.append({"code": f"{village}{g:03d}", "name": f"网格{t}-{v}-{g}", "village_code": village,
                                  "kind": "综合", "households": 400, "population": 1100})
    now = time.time()
    for i in range(5000):
        grid = grid_rows[i % len(grid_rows)]["code"]
        device_rows.append({"id": f"33010200001310{i:06d}", "kind": "camera-box", "name": f"cam {i}",
                            "grid_code": grid, "registered": True, "created_at": now, "status": "online",
                            "last_seen": now - rng.uniform(0, 300)})
    with engine.begin() as conn:
        conn.execute(areas.insert(), area_rows)
        conn.execute(grids.insert(), grid_rows)
        conn.execute(devices.insert(), device_rows)
    start = now - 180 * 86400
    gen_ms = int(start * 1000)
    batch = []
    for i in range(N_EVENTS):
        ts = start + i * (180 * 86400 / N_EVENTS)
        gen_ms = max(gen_ms + 1, int(ts * 1000))
        h = f"{(gen_ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62):032x}"
        batch.append({"id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                      "device_id": device_rows[i % 5000]["id"], "type": "motion" if i % 50 else "alarm",
                      "priority": 1 if i % 50 else 3, "ts": ts, "seq": i // 5000, "data": {"camera": "cam1"},
                      "stored_at": ts})
        if len(batch) == 20000:
            with engine.begin() as conn:
                conn.execute(events.insert(), batch)
            batch = []
            print(f"  events {i + 1:,}", end="\r", flush=True)
    cum, states = 0.0, []
    for state, share in STATE_MIX:
        cum += share
        states.append((cum, state))
    ticket_rows, transition_rows = [], []
    for i in range(1, N_TICKETS + 1):
        created = start + rng.uniform(0, 179 * 86400)
        roll = rng.random()
        state = next((s for c, s in states if roll <= c), "archived")
        grid = grid_rows[rng.randrange(len(grid_rows))]
        urgent = rng.random() < 0.05
        accepted = created + rng.uniform(60, 7200) if state not in ("dispatched", "void") else None
        resolved = accepted + rng.uniform(600, 3 * 86400) if accepted and state not in ("accepted", "handling") \
            else None
        ticket_rows.append({
            "id": i, "category": "alarm" if urgent else "road", "severity": "urgent" if urgent else "normal",
            "state": state, "level": "village", "title": "基准工单", "source": "alarm" if urgent else "manual",
            "grid_code": grid["code"], "village_code": grid["village_code"], "created_at": created,
            "accept_due": created + 4 * 3600, "resolve_due": created + 2 * 86400, "accepted_at": accepted,
            "resolved_at": resolved, "urge_count": 0, "supervise_count": 0})
        transition_rows.append({"ticket_id": i, "actor": "bench", "action": "dispatch", "from_state": "reported",
                                "to_state": "dispatched", "level": "village", "at": created})
        if len(ticket_rows) == 10000:
            with engine.begin() as conn:
                conn.execute(tickets.insert(), ticket_rows)
                conn.execute(ticket_transitions.insert(), transition_rows)
            ticket_rows, transition_rows = [], []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"))
            conn.execute(sa.text("ANALYZE"))
        ticketstats.rebuild(conn)  # the rows above went in behind dispatch's back
        conn.execute(meta.insert().values(key="bench_generated", value=repr(time.time())))
    print(f"generated in {time.perf_counter() - t0:.0f} s" + " " * 20, flush=True)


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(0.95 * len(ordered) + 0.5)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--transitions", type=int, default=3000)
    parser.add_argument("--fresh", action="store_true", help="generate the data set again")
    args = parser.parse_args()
    engine = engine_for(args.db, args.fresh)
    migrate(engine)
    generate(engine)

    with engine.connect() as conn:
        open_ids = [r[0] for r in conn.execute(sa.select(tickets.c.id).where(tickets.c.state == "dispatched")
                                               .order_by(tickets.c.id.desc()).limit(args.transitions // 3))]
        if not conn.execute(sa.select(users.c.id).where(users.c.username == "bench-admin")).first():
            auth.add_user(engine, "bench-admin", "bench admin password", "admin")
    t0 = time.perf_counter()
    done = 0
    for tid in open_ids:
        for action in ("accept", "start", "resolve"):
            dispatch.act(engine, tid, action, "bench")
            done += 1
    transitions_per_s = done / (time.perf_counter() - t0)
    print(f"transitions: {done} in {time.perf_counter() - t0:.1f} s = {transitions_per_s:.0f}/s", flush=True)

    app = create_app(engine, secret_key="b" * 40, offline_after_s=90)
    client = app.test_client()
    with client.session_transaction() as s:
        s["user"] = {"id": 1, "username": "bench-admin", "role": "admin", "scope_code": None}
        s["csrf"] = "x"
    figures = {}
    with engine.connect() as conn:
        ticket_id = conn.execute(sa.select(sa.func.max(tickets.c.id))).scalar()
        device_id = conn.execute(sa.select(devices.c.id).order_by(devices.c.id).limit(1)).scalar()
    pages = (("dashboard", "/"), ("queue", "/queue?state=dispatched&level=village"), ("queue_by_due", "/queue?sort=due"),
             ("stats", "/stats"), ("devices", "/devices"), ("devices_offline", "/devices?status=offline"),
             ("map", "/map"), ("ticket", f"/tickets/{ticket_id}"), ("device", f"/devices/{device_id}"),
             ("registry", "/registry"))
    for name, path in pages:
        samples = []
        for _ in range(args.requests + 2):
            t = time.perf_counter()
            resp = client.get(path)
            samples.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, (path, resp.status_code)
        samples = samples[2:]  # the first two warm caches
        figures[f"{name}_p95_ms"] = round(p95(samples), 1)
        size = len(resp.get_data())
        print(f"{name}: p50 {statistics.median(samples):.1f} ms, p95 {p95(samples):.1f} ms, {size / 1024:.0f} KB",
              flush=True)
    figures["worst_page_p95_ms"] = max(v for k, v in figures.items() if k.endswith("_p95_ms"))
    with engine.connect() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                  for t in (events, tickets, devices)}
    engine.dispose()
    print(json.dumps({**figures, "transitions_per_s": round(transitions_per_s), "db": args.db, **counts}))


if __name__ == "__main__":
    main()
