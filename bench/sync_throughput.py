"""Sync throughput and alarm latency, end to end.

edge outbox -> Mosquitto -> hub durable insert (SQLite, fsync) -> ack -> edge marks synced.

The hub runs as its own process (``xl-hub run``) against a Mosquitto started on a free
loopback port; the edge store and sync engine run here so that enqueue and ack times are
read on one clock.

1. Throughput: N motion events queued, then the sync starts; time until the outbox is empty.
2. Alarm latency: each round queues 10,000 motion events, then one alarm; latency is from the
   alarm's enqueue (before its fsync) until the edge has the hub's ack for it (the hub acks
   after its commit), so it is an upper bound of "enqueue to row on the hub".

Usage: python bench/sync_throughput.py [--events 20000] [--alarms 50]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocols.deviceconfig import parse_config  # noqa: E402
from edge.store import NewEvent, Store  # noqa: E402
from edge.sync import SyncEngine  # noqa: E402
from tests.helpers import Hub, Mosquitto, create_pg_database, device_id, wait_for  # noqa: E402


class TimedStore(Store):
    """Records when the hub's ack for a watched event reaches the store."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.watch: dict[str, threading.Event] = {}
        self.acked_at: dict[str, float] = {}

    def mark_synced(self, event_ids: list[str]) -> int:
        n = super().mark_synced(event_ids)
        now = time.perf_counter()
        for event_id in event_ids:
            done = self.watch.get(event_id)
            if done is not None and not done.is_set():
                self.acked_at[event_id] = now
                done.set()
        return n


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--alarms", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--hub-db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    parser.add_argument("--window", type=int, default=None, help="sync.inflight_window (default: the config's)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="xl-bench-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        mosquitto = Mosquitto(tmp / "mosquitto")
        if args.hub_db == "postgresql":
            db_url, drop = create_pg_database()
            stack.callback(drop)
        else:
            db_url = f"sqlite:///{tmp / 'hub' / 'hub.db'}"
        hub = Hub(tmp / "hub", db_url, mosquitto=mosquitto)
        dev = device_id(1)
        password = hub.add_device(dev)
        mosquitto.start()
        hub.start()
        edge_dir = tmp / "edge"
        edge_dir.mkdir()
        cfg = parse_config(json.dumps({
            "device": {"id": dev, "kind": "camera-box", "model": "bench", "name": "bench",
                       "grid_code": "330102001001001", "location": {"latitude": 30.27, "longitude": 120.15}},
            "broker": {"url": f"mqtt://127.0.0.1:{mosquitto.port}", "password": password},
            **({"sync": {"inflight_window": args.window}} if args.window else {}),
        }), str(edge_dir / "edge.yaml"))
        store = TimedStore(edge_dir / "edge.db", dev)
        sync = SyncEngine(cfg, store)
        store.listeners.append(sync.notify)
        try:
            for start in range(0, args.events, 10000):
                store.add_many([NewEvent("motion", {"camera": "cam1", "i": i})
                                for i in range(start, min(args.events, start + 10000))])
            t0 = time.perf_counter()
            sync.start()
            wait_for(lambda: store.outbox_depth() == 0, 600, "the outbox to drain", interval=0.01)
            elapsed = time.perf_counter() - t0
            events_per_s = args.events / elapsed
            print(f"throughput: {args.events} events in {elapsed:.2f} s = {events_per_s:.0f} events/s", flush=True)

            latencies = []
            for _ in range(args.alarms):
                store.add_many([NewEvent("motion", {"camera": "cam1"}) for _ in range(args.backlog)])
                depth_before = store.outbox_depth()
                enqueued = time.perf_counter()
                alarm = store.add("alarm", {"presses": 1})
                done = store.watch.setdefault(alarm.id, threading.Event())
                if not done.wait(10):
                    raise SystemExit(f"alarm {alarm.id} not acked within 10 s")
                latencies.append((store.acked_at[alarm.id] - enqueued) * 1000)
                assert depth_before >= args.backlog
                time.sleep(0.05)
            wait_for(lambda: store.outbox_depth() == 0, 600, "the backlog to drain", interval=0.05)
        finally:
            sync.stop()
            store.close()
            hub.stop()
            mosquitto.stop()
        total = args.events + args.alarms * (args.backlog + 1)
        on_hub = len(hub.event_ids())
        hub.engine.dispose()
        if on_hub != total:
            raise SystemExit(f"hub has {on_hub} events, expected {total}")
    if args.keep:
        print(f"work folder kept: {tmp}")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"alarm latency with {args.backlog} motion events queued ahead: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(latencies):.1f} ms over {len(latencies)} alarms", flush=True)
    print(json.dumps({"events_per_s": round(events_per_s), "alarm_p50_ms": round(p50, 1),
                      "alarm_p99_ms": round(p99, 1), "alarm_max_ms": round(max(latencies), 1),
                      "alarm_mean_ms": round(statistics.fmean(latencies), 1), "alarms": len(latencies),
                      "backlog": args.backlog, "events": args.events, "hub_db": args.hub_db,
                      "inflight_window": cfg.sync.inflight_window}))


if __name__ == "__main__":
    main()
