"""Alarms on time and with their tickets after faults, with real processes: the hub killed again
and again while it catches up after an outage, and a hub away long enough for 100,000 messages
to queue for it at the broker."""

from __future__ import annotations

import json
import signal
import time

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from edge.pillar.simulator import PillarSim
from protocols import serial as sf
from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Edge, Hub, device_id, wait_for


def _tickets_per_alarm(hub: Hub) -> dict[str, int]:
    with hub.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT e.id, count(t.id) FROM events e LEFT JOIN tickets t ON t.event_id = e.id "
                                    "WHERE e.type = 'alarm' GROUP BY e.id")).all()
    return {r[0]: r[1] for r in rows}


def test_hub_killed_repeatedly_during_a_catch_up_leaves_every_alarm_with_one_ticket(tmp_path, procs, mosquitto,
                                                                                    db_url):
    hub = Hub(tmp_path / "hub", db_url, mosquitto=mosquitto)
    procs.append(hub)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid="330102001001001")
    mosquitto.start()
    hub.start()
    hub.stop()  # the hub's sessions exist at the broker; now it is away
    # the outage: 240 alarms among 6,000 other events pile up on the device
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=1000, count=6240, alarm_every_s=0.025,
                kind="alarm-pillar")
    procs.append(edge)
    edge.start()
    wait_for(lambda: len(edge._query("SELECT id FROM events WHERE type = 'alarm'")) >= 240, 60, "240 alarms on the device")
    # the hub returns and is killed mid catch-up, again and again
    for delay in (0.4, 0.8, 1.2, 0.6):
        hub.start(wait=False)
        time.sleep(delay)
        hub.stop(signal.SIGKILL)
    hub.start()
    wait_for(lambda: edge.outbox_depth() == 0, 120, "the device's outbox drained")
    alarms = _tickets_per_alarm(hub)
    on_device = {r[0] for r in edge._query("SELECT id FROM events WHERE type = 'alarm'")}
    assert set(alarms) == on_device and len(on_device) >= 240
    assert set(alarms.values()) == {1}, {a: n for a, n in alarms.items() if n != 1}


def test_an_alarm_pressed_as_the_hub_returns_does_not_wait_behind_100000_queued_messages(tmp_path, procs,
                                                                                          mosquitto):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", mosquitto=mosquitto)
    procs.append(hub)
    pillar = device_id(1, "134")
    password = hub.add_device(pillar, kind="alarm-pillar", grid="330102001001001")
    noisy = [device_id(n, "131") for n in range(2, 6)]
    noisy_passwords = [hub.add_device(d, kind="camera-box", grid="330102001001001") for d in noisy]
    mosquitto.start()
    hub.start()
    sim = PillarSim(tmp_path / "ttyPILLAR", heartbeat_s=0.5)
    sim.start()
    edge = Edge(tmp_path / "edge", pillar, password, hub.mqtt_port, rate=0, kind="alarm-pillar",
                extra={"pillar": {"port": str(tmp_path / "ttyPILLAR")}})
    procs.append(edge)
    edge.start()
    wait_for(lambda: any(t == sf.MsgType.VOLUME for _, t, _ in sim.received), 20, "the agent to open the port")
    hub.stop()
    # while the hub is away, four camera boxes send 100,000 events; the broker queues them all
    # for the hub's session
    gen = EventIdGenerator()
    for dev, pw in zip(noisy, noisy_passwords):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev)
        client.username_pw_set(dev, pw)
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", hub.mqtt_port)
        client.loop_start()
        infos = [client.publish(topics.event(dev), encode_event(Event(
            id=gen.new(), device_id=dev, type="motion", ts=time.time(), seq=i + 1, priority=1,
            data={"camera": "gate"})), qos=1) for i in range(25_000)]
        for info in infos:
            info.wait_for_publish(30)
        client.loop_stop()
        client.disconnect()
    hub.start()
    back = time.time()
    time.sleep(0.3)
    pressed = time.time()
    sim.click()

    def alarm_stored():
        with hub.engine.connect() as conn:
            return conn.execute(sa.text("SELECT stored_at FROM events WHERE type = 'alarm'")).scalar()
    stored = wait_for(alarm_stored, 30, "the alarm on the hub", interval=0.02)
    with hub.engine.connect() as conn:
        queued_left = 100_000 - conn.execute(sa.text("SELECT count(*) FROM events WHERE type = 'motion'")).scalar()
        ticket = conn.execute(sa.text("SELECT count(*) FROM tickets WHERE source = 'alarm'")).scalar()
    assert stored - pressed <= 1.0, (f"the alarm took {stored - pressed:.2f} s; {queued_left} queued events "
                                     f"were still ahead of it {stored - back:.1f} s after the hub returned")
    assert ticket == 1
    assert json.loads(json.dumps(hub.health()))["urgent_lane"]["connected"]
    sim.stop()
