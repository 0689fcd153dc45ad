"""A fleet of simulated devices against a PostgreSQL hub behind Mosquitto.

N devices (``edge.fleetsim``: one asyncio process, its own MQTT login per device, birth and
last will, heartbeats every 30 s, one event per device per minute, resent until acked) connect
to a Mosquitto with the project's ACL and a password per device; ``xl-hub run`` (one node, or
two ``--role ingest`` nodes sharing the devices' topics) stores them in PostgreSQL. Measured:
- the time for all N to connect;
- ingest lag (an event's time on the device → its commit at the hub, from the events table)
  p50/p99 over the steady run;
- devices the hub shows offline while connected for 20 s or more ("wrongly offline", sampled
  each 10 s);
- the time to mark a device offline when it falls silent (no packets: the broker's keepalive,
  its last will, the hub);
- hub CPU (share of one core) and RSS;
- the broker restarted: the time until every device is connected and online again at the hub.

Usage: sudo .venv/bin/python bench/fleet.py [--devices 20000] [--minutes 5] [--workers 1|2]
(root: 20,000 sockets need a higher open-files limit). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.vision import cpu_seconds  # noqa: E402
from edge.fleetsim import Fleet  # noqa: E402
from hub.auth import mosquitto_hash  # noqa: E402
from hub.brokerconf import acl_text  # noqa: E402
from hub.db import make_engine, migrate  # noqa: E402
from hub.schema import devices  # noqa: E402
from tests.helpers import BIN, MOSQUITTO, create_pg_database, device_id, free_port  # noqa: E402

GRID = "330102001001001"
OFFLINE_AFTER_S = 90
#: "wrongly offline": a device connected for this long that the hub does not show online
SETTLE_S = 20


def raise_open_files(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Broker:
    def __init__(self, folder: Path, users: dict[str, str]):
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "passwd").write_text("".join(f"{u}:{mosquitto_hash(p)}\n" for u, p in users.items()))
        (folder / "acl").write_text(acl_text("xl-hub"))
        (folder / "mosquitto.conf").write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {folder / 'passwd'}\n"
            f"acl_file {folder / 'acl'}\npersistence true\npersistence_location {folder}/\nmax_connections -1\n"
            "max_queued_messages 100000\nset_tcp_nodelay true\n"
            f"log_dest file {folder / 'mosquitto.log'}\nlog_type error\nlog_type warning\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def hub_nodes(folder: Path, db_url: str, port: int, password: str, workers: int) -> list[subprocess.Popen]:
    (folder / "hub-mqtt-password").write_text(password)
    procs = []
    for i in range(workers):
        cfg = {"database": {"url": db_url}, "web": {"port": free_port()},
               "broker": {"url": f"mqtt://127.0.0.1:{port}", "username": "xl-hub", "password_file": "hub-mqtt-password",
                          "client_id": f"xl-hub-{i}", "share_group": "xl-hub" if workers > 1 else None},
               "ingest": {"offline_after_s": OFFLINE_AFTER_S}, "log_level": "WARNING"}
        path = folder / f"hub{i}.yaml"
        path.write_text(json.dumps(cfg))
        role = "all" if workers == 1 else ("all" if i == 0 else "ingest")
        log = open(folder / f"hub{i}.log", "w")
        procs.append(subprocess.Popen([str(BIN / "xl-hub"), "run", "--config", str(path), "--role", role],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=folder))
    return procs


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def watch_offline(engine: sa.Engine, device: str) -> float | None:
    """When the hub first shows ``device`` offline (polled every second)."""
    loop = asyncio.get_running_loop()

    def state() -> str | None:
        with engine.connect() as conn:
            return conn.execute(sa.select(devices.c.status).where(devices.c.id == device)).scalar()
    while True:
        if await loop.run_in_executor(None, state) == "offline":
            return time.time()
        await asyncio.sleep(1)


def liveness_counts(engine: sa.Engine, connected: set[str]) -> tuple[int, int]:
    """(devices the hub has online, connected devices it shows offline)."""
    now = time.time()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(devices.c.id, devices.c.status, devices.c.last_seen)).all()
    online = {r.id for r in rows if r.status != "offline" and r.last_seen and now - r.last_seen <= OFFLINE_AFTER_S}
    return len(online), len(connected - online)


async def run(args) -> dict:
    raise_open_files(args.devices + 1000)
    cap = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100  # the broker and this process: a socket a device
    if args.devices > cap:
        print(f"this machine allows {cap + 100} open files per process (no CAP_SYS_RESOURCE to raise it): "
              f"{cap} devices instead of {args.devices}", flush=True)
        args.devices = cap
    tmp = Path(tempfile.mkdtemp(prefix="xl-fleet-"))
    creds = {device_id(i + 1): secrets.token_urlsafe(12) for i in range(args.devices)}
    hub_password = secrets.token_urlsafe(16)
    broker = Broker(tmp / "mosquitto", {"xl-hub": hub_password, **creds})
    db_url, drop = create_pg_database()
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(devices.insert(), [{"id": d, "kind": "camera-box", "name": f"sim {d[-5:]}", "grid_code": GRID,
                                         "registered": True, "created_at": time.time()} for d in creds])
    broker.start()
    nodes = hub_nodes(tmp, db_url, broker.port, hub_password, args.workers)
    time.sleep(4)
    fleet = Fleet(creds, "127.0.0.1", broker.port, grid_code=GRID, heartbeat_s=30, event_every_s=60,
                  ack_timeout_s=30, keepalive_s=60, connect_spread_s=args.spread)
    t_start = time.monotonic()
    fleet.start()
    shown = time.monotonic()
    while fleet.stats.connected < args.devices and time.monotonic() - t_start < 600:
        await asyncio.sleep(0.5)
        if time.monotonic() - shown >= 10:
            shown = time.monotonic()
            print(f"  connecting: {fleet.stats.connected} connected, {fleet.stats.connects} CONNACKs, "
                  f"{fleet.stats.connect_failures} failed attempts", flush=True)
    connect_s = time.monotonic() - t_start
    print(f"{fleet.stats.connected} of {args.devices} connected in {connect_s:.1f} s", flush=True)
    # steady state
    steady_from = time.time()
    false_offline, samples = 0, 0
    cpu_t0 = time.monotonic()
    cpu_a = {p.pid: cpu_seconds(p.pid) for p in nodes}
    end = time.monotonic() + args.minutes * 60
    silent = fleet.devices[0]
    silenced_at, watcher = None, None
    while time.monotonic() < end:
        await asyncio.sleep(10)
        settled = time.monotonic() - SETTLE_S  # a device just connected may still have its birth in the queue
        connected = {d.id for d in fleet.devices if d.writer is not None and not d.silent
                     and fleet.connected_at.get(d.id, float("inf")) <= settled}
        online, wrong = await asyncio.get_running_loop().run_in_executor(None, liveness_counts, engine, connected)
        samples += 1
        false_offline = max(false_offline, wrong)
        print(f"  t+{time.time() - steady_from:4.0f}s connected {len(connected)}, hub online {online}, wrongly offline "
              f"{wrong}, events sent {fleet.stats.events_sent}, unacked {fleet.unacked()}", flush=True)
        if silenced_at is None and time.monotonic() > end - args.minutes * 60 / 2:
            silent.silent, silenced_at = True, time.time()  # stops talking; the broker's keepalive finds out
            watcher = asyncio.ensure_future(watch_offline(engine, silent.id))
    cpu = {p.pid: (cpu_seconds(p.pid) - cpu_a[p.pid]) / (time.monotonic() - cpu_t0) for p in nodes}
    rss = {p.pid: rss_mb(p.pid) for p in nodes}
    with engine.connect() as conn:
        # steady state: from a minute after every device connected (the connect storm's births and
        # first events are the reconnect figure's business)
        lags = [r[0] for r in conn.execute(sa.text(
            "SELECT (stored_at - ts) * 1000 FROM events WHERE ts >= :t"), {"t": steady_from + 60})]
        storm = [r[0] for r in conn.execute(sa.text(
            "SELECT (stored_at - ts) * 1000 FROM events WHERE ts >= :a AND ts < :b"),
            {"a": steady_from, "b": steady_from + 60})]

    try:
        offline_at = await asyncio.wait_for(watcher, 120) if watcher else None
    except asyncio.TimeoutError:
        offline_at = None
    silence_s = offline_at - silenced_at if offline_at and silenced_at else None
    print(f"ingest lag over {len(lags)} events: p50 {pct(lags, 0.5):.0f} ms, p99 {pct(lags, 0.99):.0f} ms; in the "
          f"first minute after connecting ({len(storm)} events): p99 {pct(storm, 0.99):.0f} ms", flush=True)
    print(f"silent device marked offline after {silence_s} s (keepalive {fleet.keepalive_s} s: the broker gives "
          f"up after 1.5x)", flush=True)
    # the broker restarts: every device reconnects at once
    broker.stop()
    await asyncio.sleep(3)
    broker.start()
    back = time.monotonic()
    want = {d.id for d in fleet.devices if not d.silent}

    def all_back() -> bool:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(devices.c.id).where(devices.c.status == "online")
                                .where(devices.c.status_ts > time.time() - (time.monotonic() - back) - 1)).all()
        return want <= {r.id for r in rows}
    reconnect_s = None
    while time.monotonic() - back < 300:
        await asyncio.sleep(2)
        if fleet.stats.connected >= len(want) and await asyncio.get_running_loop().run_in_executor(None, all_back):
            reconnect_s = time.monotonic() - back
            break
    print(f"after the broker restart: {fleet.stats.connected} connected, all online at the hub in "
          f"{reconnect_s if reconnect_s is not None else 'more than 300'} s", flush=True)
    await fleet.stop()
    for p in nodes:
        p.send_signal(signal.SIGTERM)
    for p in nodes:
        p.wait(60)
    broker.stop()
    engine.dispose()
    drop()
    return {"devices": args.devices, "connect_s": round(connect_s, 1), "lag_p99_ms": round(pct(lags, 0.99)),
            "lag_p50_ms": round(pct(lags, 0.5)), "lag_p99_ms_first_minute": round(pct(storm, 0.99)), "false_offline": false_offline,
            "silent_offline_s": round(silence_s, 1) if silence_s else None, "reconnect_s": round(reconnect_s, 1) if reconnect_s else None,
            "hub_cpu": round(sum(cpu.values()), 3), "hub_rss_mb": round(sum(rss.values())), "workers": args.workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20000)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--workers", type=int, choices=[1, 2], default=0, help="one run only (default: 1 then 2)")
    parser.add_argument("--spread", type=float, default=30.0, help="seconds over which the devices first connect")
    args = parser.parse_args()
    results = {}
    for workers in ([args.workers] if args.workers else [1, 2]):
        args.workers = workers
        print(f"--- {workers} ingest process(es)", flush=True)
        results[workers] = asyncio.run(run(args))
        print(json.dumps(results[workers]), flush=True)
    first = results[min(results)]
    out = {k: first[k] for k in ("devices", "connect_s", "lag_p99_ms", "false_offline", "reconnect_s", "hub_cpu",
                                 "hub_rss_mb")}
    out["silent_offline_s"] = first["silent_offline_s"]
    if 2 in results:
        out["lag_p99_ms_2_workers"] = results[2]["lag_p99_ms"]
        out["hub_cpu_2_workers"] = results[2]["hub_cpu"]
    print(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
