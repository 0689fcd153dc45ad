"""A device acts only on its own data: its messages cannot touch another device's alarm, move it to
another grid, or show it other devices' retained messages; a changed or removed credential
stops working at once on the embedded broker."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, Status, encode_event, encode_status

from .helpers import Hub, device_id, wait_for

GRID = "330102001001001"


class Client:
    """A paho client that records what it hears, its SUBACK codes and its disconnects."""

    def __init__(self, port: int, user: str, password: str, *, clean: bool = True, client_id: str | None = None):
        self.heard: list[tuple[str, bytes, bool]] = []
        self.suback: list[str] = []
        self.rc: str | None = None
        self.disconnected = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{user}-{time.monotonic_ns()}",
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.heard.append((m.topic, m.payload, bool(m.retain)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.suback.extend(str(r) for r in rcs)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.reconnect_delay_set(30, 30)  # no automatic reconnect inside a test's time
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, c, u, flags, rc, props):
        self.rc = str(rc)
        self._connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _hub(tmp_path, procs, mosquitto, broker_kind) -> Hub:
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}",
              mosquitto=mosquitto if broker_kind == "mosquitto" else None)
    procs.append(hub)
    return hub


@pytest.mark.parametrize("broker_kind", ["embedded", "mosquitto"])
def test_refused_subscriptions_deliver_nothing_not_even_retained(tmp_path, procs, mosquitto, broker_kind):
    hub = _hub(tmp_path, procs, mosquitto, broker_kind)
    a, b = device_id(1), device_id(2)
    pw_a, pw_b = hub.add_device(a), hub.add_device(b)
    if broker_kind == "mosquitto":
        mosquitto.start()
    hub.start()
    # B's birth message, retained, with where it stands
    cb = Client(hub.mqtt_port, b, pw_b)
    birth = Status(state="online", ts=time.time(), kind="camera-box", grid_code=GRID,
                   location={"latitude": 30.1, "longitude": 120.2, "address": "村口"})
    cb.client.publish(topics.status(b), encode_status(birth), qos=1, retain=True).wait_for_publish(5)
    # A asks for everything it must not have, on a persistent session
    ca = Client(hub.mqtt_port, a, pw_a, clean=False, client_id=f"spy-{a}")
    ca.client.subscribe([("xl/v1/dev/+/status", 1), ("#", 1), (topics.status(b), 1), (topics.hub_status(), 1)])
    wait_for(lambda: len(ca.suback) == 4, 10, "A's SUBACK")
    if broker_kind == "embedded":  # Mosquitto grants a subscription and filters each message instead
        assert ca.suback[:3] == ["Unspecified error"] * 3  # 0x80: refused
    time.sleep(1.5)
    assert {t for t, _, _ in ca.heard} == {topics.hub_status()}  # its own allowed topic only
    # and again after reconnecting to its persistent session (amqtt replayed every client's filters)
    ca.close()
    ca = Client(hub.mqtt_port, a, pw_a, clean=False, client_id=f"spy-{a}")
    time.sleep(1.5)
    assert all(t == topics.hub_status() for t, _, _ in ca.heard), ca.heard
    # B's own birth still reaches the hub
    wait_for(lambda: hub.engine.connect().exec_driver_sql(
        f"SELECT status FROM devices WHERE id = '{b}'").scalar() == "online", 10, "B online")
    for c in (ca, cb):
        c.close()


def test_a_changed_or_removed_credential_stops_working_at_once(tmp_path, procs, mosquitto):
    hub = _hub(tmp_path, procs, mosquitto, "embedded")
    a, b = device_id(1), device_id(2)
    old_a, pw_b = hub.add_device(a), hub.add_device(b)
    hub.start()
    ca = Client(hub.mqtt_port, a, old_a)
    assert ca.rc == "Success"
    # the hub changes A's password: A's open session is closed within the revalidation period
    t0 = time.monotonic()
    hub.cli("device", "password", "--config", str(hub.config), a, "--password-file", str(tmp_path / "new-a"))
    assert ca.disconnected.wait(5), "A's session stayed open with its old password"
    assert time.monotonic() - t0 < 5
    assert Client(hub.mqtt_port, a, old_a).rc in ("Not authorized", "Bad user name or password")
    new_a = (tmp_path / "new-a").read_text().strip()
    cn = Client(hub.mqtt_port, a, new_a)
    assert cn.rc == "Success"
    # removing B: its session is closed and its login refused; A with its new password stays
    cb = Client(hub.mqtt_port, b, pw_b)
    assert cb.rc == "Success"
    hub.cli("device", "remove", "--config", str(hub.config), b)
    assert cb.disconnected.wait(5), "a removed device kept its session"
    assert Client(hub.mqtt_port, b, pw_b).rc in ("Not authorized", "Bad user name or password")
    time.sleep(1.5)
    assert not cn.disconnected.is_set()
    cn.close()
    assert "credential changed or device removed" in hub.output()


def test_a_device_cannot_change_another_devices_alarm_or_its_own_grid(tmp_path, procs, mosquitto):
    hub = _hub(tmp_path, procs, mosquitto, "mosquitto")
    a, b = device_id(1, "134"), device_id(2)
    pw_a, pw_b = hub.add_device(a, kind="alarm-pillar"), hub.add_device(b)
    mosquitto.start()
    hub.start()
    gen = EventIdGenerator()
    ca, cb = Client(hub.mqtt_port, a, pw_a), Client(hub.mqtt_port, b, pw_b)
    alarm = Event(id=gen.new(), device_id=a, type="alarm", ts=time.time(), seq=1, priority=3, data={"presses": 1})
    ca.client.publish(topics.event(a), encode_event(alarm), qos=1).wait_for_publish(5)
    wait_for(lambda: alarm.id in hub.event_ids(), 10, "A's alarm")
    # B names A's alarm; then A itself updates it
    foreign = Event(id=gen.new(), device_id=b, type="alarm_update", ts=time.time(), seq=1, priority=3,
                    data={"alarm_id": alarm.id, "presses": 9})
    cb.client.publish(topics.event(b), encode_event(foreign), qos=1).wait_for_publish(5)
    wait_for(lambda: foreign.id in hub.event_ids(), 10, "B's update stored as B's event")

    def presses():
        with hub.engine.connect() as conn:
            return json.loads(conn.exec_driver_sql(f"SELECT data FROM events WHERE id = '{alarm.id}'").scalar())["presses"]
    assert presses() == 1
    own = Event(id=gen.new(), device_id=a, type="alarm_update", ts=time.time(), seq=2, priority=3,
                data={"alarm_id": alarm.id, "presses": 3})
    ca.client.publish(topics.event(a), encode_event(own), qos=1).wait_for_publish(5)
    wait_for(lambda: presses() == 3, 10, "A's own update")
    # B's birth message claims another grid and kind: the registry's stand, the claim is shown
    lie = Status(state="online", ts=time.time(), kind="alarm-pillar", grid_code="330102001001002", model="m2")
    cb.client.publish(topics.status(b), encode_status(lie), qos=1, retain=True).wait_for_publish(5)
    hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
            stdin="a long admin password\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "admin")

    def device_b():
        return {d["id"]: d for d in hub.get("/api/v1/devices", token)[1]["items"]}[b]
    wait_for(lambda: device_b()["model"] == "m2", 10, "B's birth message")
    row = device_b()
    assert row["kind"] == "camera-box" and row["grid_code"] is None
    assert row["reported_mismatch"] == {"kind": "alarm-pillar", "grid_code": "330102001001002"}
    assert "reports grid_code '330102001001002'" in hub.output()
    for c in (ca, cb):
        c.close()
