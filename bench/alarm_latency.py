"""Alarm latency: the serial bytes of a button press -> the alarm row on the hub.

Mosquitto on a free loopback port, ``xl-hub run`` (SQLite) and ``xl-edge run`` as their own
processes; the pillar's MCU is simulated on a real pty pair. Each press is written straight
onto the line, timed just before the write; the hub row's ``stored_at`` (taken in the hub's
insert transaction) ends the measurement. Presses are measured idle, then with at least
10,000 motion events queued in the agent's outbox ahead of each press.

Usage: python bench/alarm_latency.py [--presses 200] [--backlog 10000]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from edge.pillar.simulator import PillarSim  # noqa: E402
from edge.store import NewEvent, Store  # noqa: E402
from protocols import serial as sf  # noqa: E402
from tests.helpers import Edge, Hub, Mosquitto, device_id, wait_for  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def stored_at(hub: Hub, tick: int) -> float | None:
    with hub.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT data, stored_at FROM events WHERE type = 'alarm'")).fetchall()
    for data, at in rows:
        data = data if isinstance(data, dict) else json.loads(data)
        if data.get("mcu_tick") == tick:
            return at
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    args = parser.parse_args()

    results: dict[str, list[float]] = {"idle": [], "backlog": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="xl-bench-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        mosquitto = Mosquitto(tmp / "mosquitto")
        stack.callback(mosquitto.stop)
        hub = Hub(tmp / "hub", f"sqlite:///{tmp / 'hub' / 'hub.db'}", mosquitto=mosquitto)
        dev = device_id(1, "134")
        password = hub.add_device(dev, kind="alarm-pillar")
        mosquitto.start()
        hub.start()
        stack.callback(hub.stop)
        sim = PillarSim(tmp / "ttyPILLAR", heartbeat_s=1)
        sim.start()
        stack.callback(sim.stop)
        edge = Edge(tmp / "edge", dev, password, hub.mqtt_port, rate=0, kind="alarm-pillar",
                    extra={"pillar": {"port": str(tmp / "ttyPILLAR"), "merge_window_s": 0}, "log_level": "WARNING"})
        edge.start()
        stack.callback(edge.stop)
        wait_for(lambda: any(t == sf.MsgType.VOLUME for _, t, _ in sim.received), 20, "the agent to open the port")
        store = Store(edge.db_path, dev)
        stack.callback(store.close)
        tick = 1_000_000
        for phase in ("idle", "backlog"):
            while len(results[phase]) < args.presses:
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
                at = wait_for(lambda: stored_at(hub, tick), 10, f"alarm {tick} on the hub", interval=0.005)
                results[phase].append((at - t0) * 1000)
                time.sleep(0.02)
            print(f"{phase}: {len(results[phase])} presses, p50 {percentile(results[phase], 50):.1f} ms, "
                  f"p99 {percentile(results[phase], 99):.1f} ms, max {max(results[phase]):.1f} ms", flush=True)
        hub.engine.dispose()
    figures = {f"{phase}_{name}_ms": round(percentile(v, q), 1)
               for phase, v in results.items() for name, q in (("p50", 50), ("p99", 99))}
    figures.update(presses=args.presses, backlog=args.backlog, hub_db="sqlite")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
