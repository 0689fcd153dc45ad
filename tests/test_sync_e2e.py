"""Edge agents -> broker -> hub, end to end with real processes, brokers and databases."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.ids import EventIdGenerator

from .helpers import Edge, Hub, device_id, wait_for
from .malformed import malformed


def _setup(tmp_path, procs, db_url, mosquitto, broker_kind, n_edges=2, **edge_kw):
    hub = Hub(tmp_path / "hub", db_url, mosquitto=mosquitto if broker_kind == "mosquitto" else None)
    procs.append(hub)
    edges = []
    for i in range(1, n_edges + 1):
        dev = device_id(i)
        password = hub.add_device(dev)
        edges.append(Edge(tmp_path / f"edge{i}", dev, password, hub.mqtt_port, **edge_kw))
    if broker_kind == "mosquitto":
        mosquitto.start()
    return hub, edges


def assert_exactly_once(hub: Hub, edges: list[Edge], timeout: float = 120) -> None:
    """Every event each edge stored is on the hub, once, and each outbox is empty."""
    for edge in edges:
        # an empty outbox proves nothing while the generator still adds events: wait for its last one
        if edge.count:
            wait_for(lambda: len(edge.event_ids()) >= edge.count, timeout, f"{edge.device_id}'s {edge.count} events")
        wait_for(lambda: edge.outbox_depth() == 0, timeout, f"{edge.device_id}'s outbox to drain")
        on_edge = edge.event_ids()
        on_hub = hub.event_ids(edge.device_id)
        assert len(on_hub) == len(set(on_hub))
        assert set(on_hub) == set(on_edge), (
            f"{edge.device_id}: {len(set(on_edge) - set(on_hub))} lost, {len(set(on_hub) - set(on_edge))} unknown")


@pytest.mark.parametrize("broker_kind", ["mosquitto", "embedded"])
def test_two_edges_each_event_stored_once(tmp_path, procs, db_url, mosquitto, broker_kind):
    hub, edges = _setup(tmp_path, procs, db_url, mosquitto, broker_kind, rate=300, count=600, alarm_every_s=0.5)
    hub.start()
    for edge in edges:
        procs.append(edge)
        edge.start()
    wait_for(lambda: len(hub.event_ids()) >= 1200, 90, "1,200 events on the hub")
    assert_exactly_once(hub, edges)
    assert all(len(e.event_ids()) >= 600 for e in edges)
    with hub.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM events WHERE type = 'alarm'").scalar() >= 2
    # the devices are online, with what their birth message said
    with hub.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, kind, status FROM devices ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(e.device_id, "camera-box", "online") for e in edges]
    assert hub.health()["ingest"].get("malformed", 0) == 0


def test_edge_kill9_mid_stream_loses_and_duplicates_nothing(tmp_path, procs, mosquitto):
    hub, (edge,) = _setup(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", mosquitto, "mosquitto",
                          n_edges=1, rate=500, count=3000)
    hub.start()
    procs.append(edge)
    edge.start()
    wait_for(lambda: len(hub.event_ids()) > 300, 30, "the stream to start")
    edge.kill9()
    stored_before_kill = set(edge.event_ids())
    assert len(stored_before_kill) < 3000, "the kill came too late to be mid-stream"
    edge.start()
    wait_for(lambda: len(edge.event_ids()) >= len(stored_before_kill) + 3000, 60, "the restarted stream")
    assert_exactly_once(hub, [edge])
    assert stored_before_kill <= set(hub.event_ids())


def test_broker_down_30s_mid_stream(tmp_path, procs, mosquitto):
    hub, edges = _setup(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", mosquitto, "mosquitto",
                        rate=100, count=4000)
    hub.start()
    for edge in edges:
        procs.append(edge)
        edge.start()
    wait_for(lambda: len(hub.event_ids()) > 400, 30, "the stream to start")
    mosquitto.stop()
    time.sleep(30)
    during = [len(e.event_ids()) for e in edges]
    mosquitto.start()
    assert all(n < 4000 for n in during), "the outage came too late to be mid-stream"
    wait_for(lambda: len(hub.event_ids()) >= 8000, 120, "all 8,000 events after the broker returned")
    assert_exactly_once(hub, edges)
    assert hub.running() and all(e.running() for e in edges)


@pytest.mark.parametrize("broker_kind", ["mosquitto", "embedded"])
def test_hub_restart_mid_stream(tmp_path, procs, mosquitto, broker_kind):
    hub, edges = _setup(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", mosquitto, broker_kind,
                        rate=200, count=3000)
    hub.start()
    for edge in edges:
        procs.append(edge)
        edge.start()
    wait_for(lambda: len(hub.event_ids()) > 400, 30, "the stream to start")
    hub.kill9()
    time.sleep(5)
    assert any(e.outbox_depth() > 0 for e in edges)
    hub.start()
    wait_for(lambda: len(hub.event_ids()) >= 6000, 120, "all 6,000 events after the hub returned")
    assert_exactly_once(hub, edges)


# both brokers and both databases, in two runs rather than four (each sends 10,000 messages)
@pytest.mark.parametrize("db_url, broker_kind", [("sqlite", "embedded"), ("postgresql", "mosquitto")],
                         indirect=["db_url"])
def test_10000_malformed_payloads_are_counted_and_ingest_goes_on(tmp_path, procs, db_url, mosquitto, broker_kind):
    hub, (edge,) = _setup(tmp_path, procs, db_url, mosquitto, broker_kind, n_edges=1, rate=100, count=1500)
    # a second device that sends garbage on its own topics
    rogue = device_id(9)
    rogue_pw = hub.add_device(rogue)
    if broker_kind == "mosquitto":
        mosquitto.stop()
        mosquitto.start()
    hub.start()
    procs.append(edge)
    edge.start()
    good = {"schema_version": 1, "id": EventIdGenerator().new(), "device_id": rogue, "type": "motion",
            "ts": time.time(), "seq": 1, "priority": 1, "data": {"note": "after the garbage"}}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rogue")
    client.username_pw_set(rogue, rogue_pw)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", hub.mqtt_port)
    client.loop_start()
    infos = [client.publish(f"xl/v1/dev/{rogue}/{channel}", payload, qos=1)
             for channel, payload in malformed(rogue, 10_000)]
    for info in infos:
        info.wait_for_publish(60)
    # and one good event from the same device after all that garbage
    client.publish(topics.event(rogue), json.dumps(good).encode(), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    wait_for(lambda: good["id"] in hub.event_ids(rogue), 60, "the good event after the garbage")
    wait_for(lambda: hub.health()["ingest"].get("malformed", 0) >= 10_000, 30, "10,000 malformed counted")
    assert hub.health()["ingest"]["malformed"] == 10_000
    status, body = hub.get("/healthz")
    assert status == 200 and body["broker_connected"]
    assert_exactly_once(hub, [edge])
    assert hub.running()
    log = hub.output()
    assert log.count("malformed message on") == 10_000
    assert "Traceback" not in log


def test_full_outbox_of_100k_drains_when_the_hub_returns(tmp_path, procs, mosquitto):
    from edge.store import NewEvent, Store

    hub, (edge,) = _setup(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", mosquitto, "mosquitto",
                          n_edges=1, rate=0)
    # hours of events queued while the hub was away
    store = Store(edge.db_path, edge.device_id)
    for chunk in range(10):
        store.add_many([NewEvent("motion", {"camera": "cam1", "n": chunk * 10000 + i}) for i in range(10000)])
    store.add("alarm", {"presses": 1})
    store.close()
    procs.append(edge)
    edge.start()
    time.sleep(3)
    assert edge.outbox_depth() == 100001
    started = time.monotonic()
    hub.start()
    assert_exactly_once(hub, [edge], timeout=240)
    elapsed = time.monotonic() - started
    assert len(hub.event_ids()) == 100001
    print(f"drained 100,001 events in {elapsed:.1f} s ({100001 / elapsed:.0f} events/s)")
