"""The hub's API with and without fifty open dashboards.

Starts a real hub (``xl-hub run``, SQLite, embedded broker) with the sample county and 100
devices, then measures the p95 of API calls (``GET /api/v1/tickets`` and ``/api/v1/devices``,
one client, sequential) first with no page open, then with 50 dashboards' live streams
(``/stream``, Server-Sent Events, each logged in with its own session) connected and
receiving: a new urgent ticket every second reaches all of them while the API is measured.
The target: the p95 with 50 streams within 2x of the p95 without.

Usage: python bench/hub_streams.py [--streams 50] [--seconds 20]
Last line: one JSON object with api_p95_ms_idle, api_p95_ms_50_streams, ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub import registry  # noqa: E402
from tests.helpers import Hub, console_session, wait_for  # noqa: E402
from tests.test_gridregistry import SAMPLE  # noqa: E402

PASSWORD = "a long bench password"
GRID = "330102001001001"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(0.95 * len(ordered) + 0.5)) - 1)]


class Stream(threading.Thread):
    """One open dashboard: reads its event stream and counts the tickets it is sent."""

    def __init__(self, port: int, cookie: str):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /stream?after=0 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                          f"Accept: text/event-stream\r\n\r\n".encode())
        self.tickets = 0
        self.ok = False

    def run(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                buf += data
                if not self.ok and b"\r\n\r\n" in buf:
                    self.ok = buf.startswith(b"HTTP/1.1 200")
                self.tickets += data.count(b"event: ticket")
        except OSError:
            return


def measure(port: int, token: str, seconds: float) -> list[float]:
    """API calls one after another for ``seconds``; their durations (ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        path = "/api/v1/tickets?limit=50" if i % 2 else "/api/v1/devices"
        t = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        samples.append((time.perf_counter() - t) * 1000)
        assert resp.status == 200, resp.status
    return samples[5:]


def reporter(hub: Hub, token: str, stop: threading.Event, made: list) -> None:
    """An urgent-looking ticket a second, reported through the API (what the streams carry)."""
    while not stop.wait(1.0):
        status, body = hub.post("/api/v1/tickets", token, {"title": "bench", "grid_code": GRID, "category": "fire"})
        assert status == 201, body
        made.append(body["ticket"]["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="length of each measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hub = Hub(folder / "hub", "sqlite:///hub.db")
        hub.start()
        try:
            (folder / "county.csv").write_text(SAMPLE, encoding="utf-8")
            hub.cli("registry", "import", "--config", str(hub.config), str(folder / "county.csv"))
            hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
                    stdin=PASSWORD + "\n")
            token = hub.cli("token", "create", "--config", str(hub.config), "admin")
            with hub.engine.begin() as conn:  # 100 registered devices for /api/v1/devices
                for i in range(100):
                    registry.put_device(conn, f"33010200001310{i:06d}", {"kind": "camera-box", "name": f"设备{i}",
                                                                          "grid_code": GRID})
            idle = measure(hub.web_port, token, args.seconds)
            print(f"idle: {len(idle)} calls, p50 {sorted(idle)[len(idle) // 2]:.1f} ms, p95 {p95(idle):.1f} ms",
                  flush=True)
            streams = [Stream(hub.web_port, console_session(hub.web_port, "admin", PASSWORD)) for _ in range(args.streams)]
            for s in streams:
                s.start()
            wait_for(lambda: all(s.ok for s in streams), 30, "every stream to be answered")
            stop, made = threading.Event(), []
            feeder = threading.Thread(target=reporter, args=(hub, token, stop, made), daemon=True)
            feeder.start()
            busy = measure(hub.web_port, token, args.seconds)
            stop.set()
            feeder.join()
            time.sleep(2.5)
            got = sorted(s.tickets for s in streams)
            print(f"{args.streams} streams: {len(busy)} calls, p50 {sorted(busy)[len(busy) // 2]:.1f} ms, p95 {p95(busy):.1f} ms; "
                  f"{len(made)} tickets reported, each stream got {got[0]}-{got[-1]}", flush=True)
            health = hub.health()
            print(f"hub: {health.get('page_streams')}", flush=True)
        finally:
            hub.stop()
    idle_p95, busy_p95 = p95(idle), p95(busy)
    print(json.dumps({"api_p95_ms_idle": round(idle_p95, 1), "api_p95_ms_50_streams": round(busy_p95, 1),
                      "ratio": round(busy_p95 / idle_p95, 2), "streams": args.streams,
                      "tickets_sent": len(made), "min_tickets_per_stream": got[0]}))


if __name__ == "__main__":
    main()
