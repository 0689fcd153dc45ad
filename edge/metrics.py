"""The edge agent's Prometheus metrics (names in the README), read from the running agent at
scrape time: messages to and from the hub, the outbox, cameras, the pillar's serial link."""

from __future__ import annotations

from typing import Any

from common.metrics import CountersCollector


def collector(agent: Any) -> CountersCollector:
    counters = [("sync", "Sync with the hub", {}, lambda: agent.sync.counters),
                ("alarm_book", "Commands for alarms", {}, lambda: agent.alarms.counters)]
    if agent.pillar is not None:
        counters += [("pillar", "Panic button and tamper", {}, lambda: agent.pillar.counters),
                     ("pillar_link", "Serial link to the pillar's controller", {}, lambda: agent.pillar.link.counters)]
    if agent.uploads is not None:
        counters.append(("clip_upload", "Clip uploads to the hub", {}, lambda: agent.uploads.counters))

    def camera_up():
        states = agent.meters.states()
        return [((name,), 1.0 if states.get(name, "up" if fps > 0 else "down") == "up" else 0.0)
                for name, fps in agent.meters.rates().items()]
    return CountersCollector("xl_edge", counters=counters, gauges=[
        ("outbox_depth", "Events stored and not yet acknowledged by the hub", (),
         lambda: [((), agent.store.outbox_depth())]),
        ("camera_fps", "Frames analysed per second, per camera", ("camera",),
         lambda: [((name,), fps) for name, fps in agent.meters.rates().items()]),
        ("camera_up", "1 while the camera delivers frames", ("camera",), camera_up),
        ("hub_connected", "1 while the MQTT connection to the hub is up", (),
         lambda: [((), 1.0 if agent.sync.connected else 0.0)]),
    ])
