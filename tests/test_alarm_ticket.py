"""Commit, then ack: an alarm and its urgent ticket are stored in one transaction before the
device hears the ack, so no acked alarm can ever be without its ticket (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Hub, device_id, wait_for

ORPHANS = ("SELECT count(*) FROM events e WHERE e.type = 'alarm' "
           "AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.event_id = e.id)")


def test_every_acked_alarm_has_its_ticket_at_the_moment_of_the_ack(tmp_path, procs, db_url):
    hub = Hub(tmp_path / "hub", db_url)
    procs.append(hub)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar")
    hub.start()
    engine = sa.create_engine(hub.engine.url)
    acked: list[str] = []
    without_ticket: list[str] = []

    def on_ack(client, userdata, msg):
        ids = json.loads(msg.payload)["ids"]
        with engine.connect() as conn:  # the moment the device hears the ack
            have = {r[0] for r in conn.execute(sa.text("SELECT event_id FROM tickets WHERE event_id IS NOT NULL"))}
        without_ticket.extend(i for i in ids if i not in have)
        acked.extend(ids)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pillar")
    client.username_pw_set(dev, password)
    client.on_message = on_ack
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.ack(dev), 1)
    client.connect("127.0.0.1", hub.mqtt_port)
    client.loop_start()
    wait_for(lambda: client.is_connected(), 10, "the pillar's connection")
    time.sleep(0.5)
    # meanwhile, a reader looks for an alarm stored without its ticket
    orphans_seen: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            with engine.connect() as conn:
                orphans_seen.append(conn.execute(sa.text(ORPHANS)).scalar())
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    gen = EventIdGenerator()
    alarms = [Event(id=gen.new(), device_id=dev, type="alarm", ts=time.time(), seq=i, priority=3,
                    data={"presses": 1}) for i in range(150)]
    for ev in alarms:
        client.publish(topics.event(dev), encode_event(ev), qos=1)
    for ev in alarms[:20]:  # sent again, as after a reconnect: still one ticket each
        client.publish(topics.event(dev), encode_event(ev), qos=1)
    wait_for(lambda: {e.id for e in alarms} <= set(acked), 60, "every alarm acked")
    stop.set()
    watcher.join(5)
    client.loop_stop()
    client.disconnect()
    assert without_ticket == []
    assert len(orphans_seen) > 10 and max(orphans_seen) == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT severity, state, count(*) FROM tickets GROUP BY severity, state")).all()
        notified = conn.execute(sa.text("SELECT count(DISTINCT target) FROM notifications")).scalar()
    assert [tuple(r) for r in rows] == [("urgent", "dispatched", 150)]
    assert notified >= 4  # grid workers, police station, town centre, county centre
    engine.dispose()
