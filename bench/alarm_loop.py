"""The alarm loop, timed end to end with real processes: press → ticket open on the hub, press →
the police station's webhook delivered, and accept (the alarm API) → the pillar's LED shows
"help coming".

Mosquitto on a free loopback port, ``xl-hub run`` (SQLite) and ``xl-edge run`` as their own
processes; the pillar's MCU is simulated on a real pty pair. A press is written onto the line,
timed just before the write, and ends when a reader sees its ticket committed on the hub
(polled every 5 ms, so the figure is an upper bound), and when a local HTTP receiver (the police
station's webhook) has the notification for it. An accept is timed from just before the
HTTP request to the LED frame arriving at the simulated MCU. Measured idle, then with 10,000
events queued in the agent's outbox while the same agent analyses a 1080p camera (motion and
faces at full rate): the alarm path must not wait behind video work.

Usage: python bench/alarm_loop.py [--presses 100] [--backlog 10000] [--no-camera]
Last line: one JSON object with ``ticket_p99_ms``, ``led_p99_ms``, ``webhook_p99_ms``,
``ticket_backlog_p99_ms``, ``led_backlog_p99_ms`` (and the backlog webhook figure).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from edge.pillar.simulator import PillarSim  # noqa: E402
from edge.store import NewEvent, Store  # noqa: E402
from protocols import serial as sf  # noqa: E402
from tests.helpers import Edge, Hub, Mosquitto, device_id, wait_for  # noqa: E402

from bench.alarm_latency import percentile  # noqa: E402


def ticket_of(hub: Hub, tick: int) -> tuple[int, str] | None:
    with hub.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT t.id, e.id, e.data FROM events e JOIN tickets t ON t.event_id = e.id "
                                    "WHERE e.type = 'alarm' ORDER BY e.id DESC LIMIT 5")).fetchall()
    for ticket_id, alarm_id, data in rows:
        data = data if isinstance(data, dict) else json.loads(data)
        if data.get("mcu_tick") == tick:
            return ticket_id, alarm_id
    return None


def led_after(sim: PillarSim, state: sf.Led, since: float) -> float | None:
    for t0, t, p in list(sim.received):
        if t0 >= since and t == sf.MsgType.LED and p[0] == state:
            return t0
    return None


class Receiver:
    """The police station's system: records when each alarm's notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrived.setdefault(body["ticket"]["event_id"], time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/police"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--no-camera", action="store_true", help="no 1080p camera on the agent in the backlog phase")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    args = parser.parse_args()

    ticket_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    webhook_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    # where a press's time goes: onto the device's disk, then into the hub's database
    edge_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    hub_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    seen_ms: dict[str, list[float]] = {"idle": [], "backlog": []}  # ticket row made → a reader sees it
    # and an accept's: the command written on the hub, applied on the device, on the LED
    written_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    applied_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    wall = time.time() - time.monotonic()
    receiver = Receiver()
    led_ms: dict[str, list[float]] = {"idle": [], "backlog": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="xl-bench-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        mosquitto = Mosquitto(tmp / "mosquitto")
        stack.callback(mosquitto.stop)
        (tmp / "hub").mkdir()
        (tmp / "hub" / "police.secret").write_text("a bench webhook secret")
        hub = Hub(tmp / "hub", f"sqlite:///{tmp / 'hub' / 'hub.db'}", mosquitto=mosquitto, extra={
            "notify": {"webhooks": [{"name": "police", "url": receiver.url, "secret_file": "police.secret",
                                     "parties": ["police_station"]}]}})
        dev = device_id(1, "134")
        password = hub.add_device(dev, kind="alarm-pillar", grid="330102001001001")
        from tests.test_gridregistry import SAMPLE
        (hub.folder / "county.csv").write_text(SAMPLE)
        hub.cli("registry", "import", "--config", str(hub.config), str(hub.folder / "county.csv"))
        hub.cli("user", "add", "--config", str(hub.config), "op", "--role", "operator", "--scope", "330102000000",
                "--password-stdin", stdin="operator password 1\n")
        token = hub.cli("token", "create", "--config", str(hub.config), "op")
        mosquitto.start()
        hub.start()
        stack.callback(hub.stop)
        sim = PillarSim(tmp / "ttyPILLAR", heartbeat_s=1)
        sim.start()
        stack.callback(sim.stop)

        def run_edge(cameras: list) -> Edge:
            edge = Edge(tmp / "edge", dev, password, hub.mqtt_port, rate=0, kind="alarm-pillar",
                        extra={"pillar": {"port": str(tmp / "ttyPILLAR"), "merge_window_s": 0},
                               "log_level": "WARNING", "cameras": cameras})
            edge.start()
            stack.callback(edge.stop)
            wait_for(lambda: any(t == sf.MsgType.VOLUME for _, t, _ in sim.received), 30, "the agent to open the port")
            return edge

        edge = run_edge([])
        store = Store(edge.db_path, dev)
        stack.callback(store.close)
        tick = 1_000_000
        for phase in ("idle", "backlog"):
            if phase == "backlog" and not args.no_camera:
                from edge.camera.scenes import demo_scene, write_video
                video = tmp / "edge" / "pillar-1080p.mp4"
                write_video(demo_scene(1920, 1080, 20.0), video)
                edge.stop()
                sim.received.clear()
                edge = run_edge([{"name": "pillar", "source": video.name}])
                wait_for(lambda: edge._query("SELECT count(*) FROM events WHERE type = 'motion'") != [(0,)], 60,
                         "the camera's first motion event")
            while len(ticket_ms[phase]) < args.presses:
                if phase == "backlog":
                    depth = store.outbox_depth()
                    store.add_many([NewEvent("motion", {"camera": "cam1"})
                                    for _ in range(max(0, args.backlog - depth) + 200)])
                    if store.outbox_depth() < args.backlog:
                        continue
                tick += 1
                frame = sf.encode(sf.Frame(tick & 0xFF, sf.MsgType.BUTTON, sf.button(True, tick)))
                t0 = time.time()
                sim.write_raw(frame)
                _, alarm_id = wait_for(lambda: ticket_of(hub, tick), 10, f"the ticket of alarm {tick}", interval=0.005)
                t_seen = time.time()
                ticket_ms[phase].append((t_seen - t0) * 1000)
                with hub.engine.connect() as conn:
                    t_created = conn.execute(sa.text("SELECT created_at FROM tickets WHERE event_id = :a"),
                                             {"a": alarm_id}).scalar()
                seen_ms[phase].append((t_seen - t_created) * 1000)
                [(created,)] = edge._query(f"SELECT created_at FROM events WHERE id = '{alarm_id}'")
                with hub.engine.connect() as conn:
                    stored = conn.execute(sa.text("SELECT stored_at FROM events WHERE id = :a"), {"a": alarm_id}).scalar()
                edge_ms[phase].append((created - t0) * 1000)
                hub_ms[phase].append((stored - created) * 1000)
                got = wait_for(lambda: receiver.arrived.get(alarm_id), 10, "the police station's webhook",
                               interval=0.005)
                webhook_ms[phase].append((got - t0) * 1000)
                wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'", interval=0.005)
                m0 = time.monotonic()
                status, body = hub.post(f"/api/v1/alarms/{alarm_id}/accept", token)
                assert status == 202, body
                lit = wait_for(lambda: led_after(sim, sf.Led.HELP_COMING, m0), 10, "LED 'help coming'",
                               interval=0.005)
                led_ms[phase].append((lit - m0) * 1000)
                with hub.engine.connect() as conn:
                    cmd_id, written = conn.execute(sa.text("SELECT id, created_at FROM device_commands WHERE "
                                                           "alarm_id = :a"), {"a": alarm_id}).one()
                [(applied,)] = edge._query(f"SELECT applied_at FROM applied_commands WHERE id = '{cmd_id}'")
                written_ms[phase].append((written - (m0 + wall)) * 1000)
                applied_ms[phase].append((applied - written) * 1000)
                time.sleep(0.02)
            print(f"{phase}: {len(ticket_ms[phase])} presses; press → ticket p50 "
                  f"{percentile(ticket_ms[phase], 50):.1f} ms p99 {percentile(ticket_ms[phase], 99):.1f} ms; "
                  f"accept → LED p50 {percentile(led_ms[phase], 50):.1f} ms p99 "
                  f"{percentile(led_ms[phase], 99):.1f} ms; press → webhook p50 "
                  f"{percentile(webhook_ms[phase], 50):.1f} ms p99 {percentile(webhook_ms[phase], 99):.1f} ms",
                  flush=True)
            print(f"  of press → ticket: press → stored on the device p50 {percentile(edge_ms[phase], 50):.1f} "
                  f"p99 {percentile(edge_ms[phase], 99):.1f} ms; device → stored on the hub p50 "
                  f"{percentile(hub_ms[phase], 50):.1f} p99 {percentile(hub_ms[phase], 99):.1f} ms; ticket made → "
                  f"seen committed p50 {percentile(seen_ms[phase], 50):.1f} p99 {percentile(seen_ms[phase], 99):.1f} ms"
                  " (includes the reader's 5 ms poll)", flush=True)
            print(f"  of accept → LED: accept → command written p50 {percentile(written_ms[phase], 50):.1f} "
                  f"p99 {percentile(written_ms[phase], 99):.1f} ms; written → applied on the device p50 "
                  f"{percentile(applied_ms[phase], 50):.1f} p99 {percentile(applied_ms[phase], 99):.1f} ms",
                  flush=True)
        hub.engine.dispose()
    print(json.dumps({
        "ticket_p99_ms": round(percentile(ticket_ms["idle"], 99), 1),
        "led_p99_ms": round(percentile(led_ms["idle"], 99), 1),
        "webhook_p99_ms": round(percentile(webhook_ms["idle"], 99), 1),
        "ticket_backlog_p99_ms": round(percentile(ticket_ms["backlog"], 99), 1),
        "led_backlog_p99_ms": round(percentile(led_ms["backlog"], 99), 1),
        "webhook_backlog_p99_ms": round(percentile(webhook_ms["backlog"], 99), 1),
        "presses": args.presses, "backlog": args.backlog, "camera_1080p": not args.no_camera, "hub_db": "sqlite",
    }))


if __name__ == "__main__":
    main()
