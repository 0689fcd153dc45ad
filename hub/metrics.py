"""The hub's Prometheus metrics (names in the README): histograms observed where the work is
done, counters and gauges read from the running hub at scrape time."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import Histogram

from common.metrics import CountersCollector

INGEST_BATCH = Histogram("xl_hub_ingest_batch_messages", "Messages stored in one ingest transaction", ["lane"],
                         buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000))
INGEST_LAG = Histogram("xl_hub_ingest_lag_seconds", "From an event's time on the device to its commit at the hub",
                       ["lane"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
ALARM_TICKET = Histogram("xl_hub_alarm_ticket_seconds", "From a panic-button press on the pillar to its ticket "
                         "committed at the hub", buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30))


def collector(hub: Any) -> CountersCollector:
    def commands_pending():
        from .schema import device_commands
        with hub.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(device_commands)
                             .where(device_commands.c.due_at.is_not(None))
                             .where(device_commands.c.expires_at > time.time())).scalar()
        return [((), n or 0)]

    def devices():
        from .web.streams import counts
        return [((state,), n) for state, n in counts(hub.engine, None, hub.cfg.ingest.offline_after_s)["liveness"]
                .items()]
    return CountersCollector("xl_hub", counters=[
        ("ingest", "Ingest (main lane)", {"lane": "main"}, lambda: hub.ingest.counters),
        ("ingest", "Ingest (urgent lane)", {"lane": "urgent"}, lambda: hub.urgent.counters),
        ("commands", "Commands to devices", {}, lambda: hub.commands.counters),
        ("notify", "Webhook deliveries", {}, lambda: hub.notifier.counters),
        ("live", "Live views", {}, lambda: hub.live.counters),
        ("page_streams", "Console page streams", {}, lambda: {"reads": hub.streams.counters["reads"],
                                                              "messages": hub.streams.counters["messages"]}),
    ], gauges=[
        ("broker_connected", "1 while the lane's MQTT connection is up", ("lane",),
         lambda: [(("main",), hub.ingest.connected), (("urgent",), hub.urgent.connected)]),
        ("commands_pending", "Commands to devices not acknowledged and not expired", (), commands_pending),
        ("devices", "Devices by state (online, offline, unknown)", ("state",), devices),
        ("page_streams_open", "Console pages with a live stream open", (),
         lambda: [((), hub.streams.counters["subscribers"])]),
    ])
