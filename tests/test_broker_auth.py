"""Logins and ACLs on both brokers, refused logins are fatal, and liveness on the hub."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Edge, Hub, device_id, wait_for


def _hub(tmp_path, procs, mosquitto, broker_kind) -> Hub:
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}",
              mosquitto=mosquitto if broker_kind == "mosquitto" else None)
    procs.append(hub)
    return hub


def _client(port: int, user: str, password: str) -> tuple[mqtt.Client, dict]:
    state: dict = {"connected": threading.Event()}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    client.username_pw_set(user, password)

    def on_connect(c, u, flags, rc, props):
        state["rc"] = str(rc)
        state["connected"].set()

    def on_subscribe(c, u, mid, rcs, props):
        state["suback"] = [str(r) for r in rcs]
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port)
    client.loop_start()
    state["connected"].wait(10)
    return client, state


@pytest.mark.parametrize("broker_kind", ["mosquitto", "embedded"])
def test_refused_login_is_fatal_and_says_why(tmp_path, procs, mosquitto, broker_kind):
    hub = _hub(tmp_path, procs, mosquitto, broker_kind)
    dev = device_id(1)
    hub.add_device(dev)
    if broker_kind == "mosquitto":
        mosquitto.start()
    hub.start()
    edge = Edge(tmp_path / "edge", dev, "not-the-password", hub.mqtt_port, rate=10)
    procs.append(edge)
    edge.start()
    wait_for(lambda: not edge.running(), 20, "the agent to give up")
    assert edge.proc.returncode == 1
    assert "refused the login" in edge.output() and dev in edge.output()


@pytest.mark.parametrize("broker_kind", ["mosquitto", "embedded"])
def test_device_acl_and_unknown_client(tmp_path, procs, mosquitto, broker_kind):
    hub = _hub(tmp_path, procs, mosquitto, broker_kind)
    a, b = device_id(1), device_id(2)
    pw_a = hub.add_device(a)
    pw_b = hub.add_device(b)
    if broker_kind == "mosquitto":
        mosquitto.start()
    hub.start()
    _, unknown = _client(hub.mqtt_port, device_id(7), "guessed-password")
    assert unknown["rc"] in ("Not authorized", "Bad user name or password")
    client, state = _client(hub.mqtt_port, a, pw_a)
    assert state["rc"] == "Success"
    gen = EventIdGenerator()
    spoof = Event(id=gen.new(), device_id=b, type="alarm", ts=time.time(), seq=1, priority=3)
    own = Event(id=gen.new(), device_id=a, type="motion", ts=time.time(), seq=1, priority=1)
    client.publish(topics.event(b), encode_event(spoof), qos=1).wait_for_publish(5)
    client.publish(topics.event(a), encode_event(own), qos=1).wait_for_publish(5)
    wait_for(lambda: own.id in hub.event_ids(), 10, "A's own event")
    # A listens on B's ack topic; B sends an event and gets its ack, A must hear nothing
    heard: dict[str, list] = {"a": [], "b": []}
    client.on_message = lambda c, u, m: heard["a"].append(m.topic)
    client.subscribe(topics.ack(b), qos=1)
    wait_for(lambda: "suback" in state, 5, "A's SUBACK")
    client_b, state_b = _client(hub.mqtt_port, b, pw_b)
    client_b.on_message = lambda c, u, m: heard["b"].append(json.loads(m.payload)["ids"])
    client_b.subscribe(topics.ack(b), qos=1)
    wait_for(lambda: "suback" in state_b, 5, "B's SUBACK")
    real_b = Event(id=gen.new(), device_id=b, type="motion", ts=time.time(), seq=1, priority=1)
    client_b.publish(topics.event(b), encode_event(real_b), qos=1).wait_for_publish(5)
    wait_for(lambda: [real_b.id] in heard["b"], 10, "B's ack")
    time.sleep(0.5)
    assert heard["a"] == []
    assert spoof.id not in hub.event_ids()
    for c in (client, client_b):
        c.loop_stop()
        c.disconnect()


def test_device_goes_offline_when_it_stops_and_online_again(tmp_path, procs, mosquitto):
    hub = _hub(tmp_path, procs, mosquitto, "mosquitto")
    dev = device_id(1)
    pw = hub.add_device(dev)
    mosquitto.start()
    hub.start()
    hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
            stdin="a long admin password\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "admin")

    def state():
        status, body = hub.get("/api/v1/devices", token)
        assert status == 200
        return {d["id"]: d for d in body["items"]}[dev]
    assert state()["liveness"] == "unknown"
    edge = Edge(tmp_path / "edge", dev, pw, hub.mqtt_port, rate=5)
    procs.append(edge)
    edge.start()
    wait_for(lambda: state()["liveness"] == "online", 20, "online")
    wait_for(lambda: (state()["heartbeat"] or {}).get("cameras", {}).get("cam1", 0) > 0, 20, "a heartbeat")
    hb = state()["heartbeat"]
    assert hb["disk_free_bytes"] > 0 and hb["uptime_s"] > 0 and "outbox_depth" in hb
    edge.stop()
    wait_for(lambda: state()["liveness"] == "offline", 20, "offline after a clean stop")
    edge.start()
    wait_for(lambda: state()["liveness"] == "online", 20, "online again")
    edge.kill9()
    # the broker publishes the last will once the keepalive (5 s) runs out
    wait_for(lambda: state()["liveness"] == "offline", 30, "offline after kill -9 (last will)")
