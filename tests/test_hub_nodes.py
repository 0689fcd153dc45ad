"""Two hub nodes (separate ``xl-hub run`` processes) on one PostgreSQL and one Mosquitto: they
share the devices' topics (MQTT shared subscriptions) and the jobs (leases). The node holding
the escalator's lease is killed with SIGKILL while devices send: the survivor ingests every
event exactly once and runs the escalator within the lease's time."""

from __future__ import annotations

import json
import signal
import time

import sqlalchemy as sa

from hub import dispatch

from .helpers import Edge, Hub, create_pg_database, device_id, wait_for

LEASE_S = 4
GRID = "330102001001001"


def _node(tmp_path, name: str, db_url: str, mosquitto, password: str | None) -> Hub:
    node = Hub(tmp_path / name, db_url, mosquitto=mosquitto,
               extra={"dispatch": {"lease_s": LEASE_S, "escalate_every_s": 1}})
    if password is not None:  # one hub, one MQTT login: the second node uses the first one's password
        (tmp_path / name / "hub-mqtt-password").write_text(password)
        mosquitto.add_user("xl-hub", password)
    cfg = json.loads(node.config.read_text())
    cfg["broker"].update(client_id=f"xl-hub-{name}", share_group="xl-hub")
    node.config.write_text(json.dumps(cfg))
    return node


def _holder_pid(engine: sa.Engine, lease: str) -> int | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT holder, expires_at FROM leases WHERE name = :n"), {"n": lease}).first()
    if row is None or row.expires_at < time.time():
        return None
    return int(row.holder.split(":")[1])


def test_a_killed_node_leaves_its_events_and_its_jobs_to_the_other(tmp_path, procs, mosquitto):
    db_url, drop = create_pg_database()
    try:
        a = _node(tmp_path, "a", db_url, mosquitto, None)
        b = _node(tmp_path, "b", db_url, mosquitto, (tmp_path / "a" / "hub-mqtt-password").read_text())
        procs.extend([a, b])
        devs = [device_id(1), device_id(2)]
        passwords = [a.add_device(d, grid=GRID) for d in devs]
        mosquitto.start()
        a.start()
        b.start()
        edges = [Edge(tmp_path / f"edge{i}", d, p, mosquitto.port, rate=150, count=1500)
                 for i, (d, p) in enumerate(zip(devs, passwords))]
        procs.extend(edges)
        for e in edges:
            e.start()
        # both nodes take a share of the devices' messages
        wait_for(lambda: all(n.health()["ingest"]["events_new"] > 50 for n in (a, b)), 60, "both nodes ingesting")
        wait_for(lambda: _holder_pid(a.engine, "escalator") in (a.proc.pid, b.proc.pid), 20, "an escalator")
        holder = a if _holder_pid(a.engine, "escalator") == a.proc.pid else b
        survivor = b if holder is a else a
        stored_before = len(survivor.event_ids())
        assert stored_before < 3000, "the kill must come while events still flow"
        holder.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        # a ticket past its accept deadline: only a running escalator moves it up
        with survivor.engine.begin() as conn:
            tid = dispatch.open_ticket(conn, category="road", title="路面塌陷", source="manual", grid_code=GRID)
            conn.execute(sa.text("UPDATE tickets SET accept_due = :t WHERE id = :id"),
                         {"t": time.time() - 60, "id": tid})
        wait_for(lambda: dispatch.get_ticket(survivor.engine, tid)["level"] == "town", LEASE_S + 15,
                 "the escalator on the surviving node")
        took = time.monotonic() - killed_at
        assert _holder_pid(survivor.engine, "escalator") == survivor.proc.pid
        # every event of both devices, exactly once
        wait_for(lambda: len(survivor.event_ids()) == 3000, 120, "all 3,000 events on the surviving node")
        ids = survivor.event_ids()
        assert len(ids) == len(set(ids)) == 3000
        for e in edges:
            wait_for(lambda e=e: not e._query("SELECT event_id FROM outbox"), 60, "the device's outbox to drain")
        assert survivor.health()["broker_connected"] and survivor.running()
        print(f"escalator on the survivor {took:.1f} s after the kill (lease {LEASE_S} s)")
    finally:
        for p in reversed(procs):
            p.stop()
        procs.clear()
        drop()
