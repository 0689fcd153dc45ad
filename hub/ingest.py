"""MQTT ingest: device events, status and heartbeats into the hub database.

paho's network thread only queues messages. The ingest worker takes them in batches, stores
each event id once in one transaction (an alarm together with its urgent ticket and the
notifications of the five parties), commits, and only then acks the ids to their devices
(duplicates are acked too, so the device stops resending). A malformed payload is counted and
logged and never stops the batch. Command acks (``cmd_ack``) mark the hub's commands applied; a
device's live birth makes its unacked commands due again (``hub.commands``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa

from common.mqtt import make_client, on_connack
from protocols import ProtocolError, topics
from protocols.messages import (Event, decode_command_ack, decode_event, decode_heartbeat, decode_status,
                                decode_hub_status, encode_ack, encode_hub_status)

from . import alarms, commands, eventlog, metrics, registry
from .db import WRITE_GATE
from . import rules as rule_tickets

logger = logging.getLogger(__name__)

MAX_YIELD_S = 0.5  # the longest the main lane waits for the urgent lane between two batches
BATCH_TARGET_S = 0.05  # how long one main-lane transaction should take at most
MIN_BATCH = 20



@dataclass(frozen=True)
class _Message:
    msg: mqtt.MQTTMessage
    device_id: str
    channel: str
    value: Any


class _DatabaseAway(Exception):
    """The database cannot be reached: the batch is kept and tried again (nothing acked)."""


class IngestError(Exception):
    """Ingest cannot go on (for example: the broker refused the hub's login)."""


class Ingest:
    def __init__(self, engine: sa.Engine, *, host: str, port: int, username: str, password: str,
                 client_id: str = "xl-hub-ingest", share_group: str | None = None, tls: bool = False,
                 ca_file: str | None = None, batch_max: int = 500, rules: list | None = None,
                 on_device_online=None, lane: str = "main", urgent_lane_ready=None):
        """``lane``: "main" takes events, status, heartbeats and command acks and publishes the
        hub's status; "urgent" takes only the urgent topic, in its own broker session, so an alarm
        never waits behind a backlog queued for the main session. ``urgent_lane_ready`` (main
        only) says whether the urgent lane is connected: the hub's status offers it to devices."""
        if lane not in ("main", "urgent"):
            raise ValueError("lane: main or urgent")
        self.lane = lane
        self.on_live_answer: Callable[[str, bytes], None] | None = None
        self.on_connected = None  # called (network thread) after each connect
        #: main lane: a callable that is true while the urgent lane has alarms to store; the main
        #: lane waits for it (briefly) between its batches, so an alarm does not wait for the
        #: database behind a backlog (SQLite has one writer)
        self.yield_to = None
        self._storing = False
        self._batch_limit = batch_max
        self.urgent_lane_ready = urgent_lane_ready or (lambda: False)
        self.engine = engine
        #: called (ingest thread) after a batch in which devices came online: their commands are due
        self.on_device_online = on_device_online
        #: names this run of the hub in its status, so devices notice a restart without its "offline"
        self.boot = uuid.uuid4().hex[:16]
        self.rules = rules or []
        self.batch_max = batch_max
        self.share_group = share_group
        self.fatal: str | None = None
        # fixed keys: the web thread copies this dict while the worker updates it
        self.counters = {"events_new": 0, "events_duplicate": 0, "malformed": 0, "db_errors": 0, "command_acks": 0}
        self._host, self._port = host, port
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker = threading.Thread(target=self._run, name=f"ingest-{lane}", daemon=True)
        will = (topics.hub_status(), encode_hub_status("offline", time.time(), self.boot)) if lane == "main" else None
        client = make_client(client_id if lane == "main" else f"{client_id}-urgent", username=username,
                             password=password, clean_session=False, will=will, tls=tls, ca_file=ca_file,
                             max_inflight=1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.lane == "main":
            registry.mark_ingest_started(self.engine)
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        if self._connected.is_set() and self.lane == "main":
            info = self._client.publish(topics.hub_status(), encode_hub_status("offline", time.time(), self.boot),
                                        qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()

    def alive(self) -> bool:
        return self.fatal is None and self._worker.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not on_connack(client, reason_code, fatal=self._refused,
                          transient=lambda reason: logger.warning("broker refused the connection: %s; retrying",
                                                                  reason)):
            return
        channels = ("event", "status", "heartbeat", "cmd_ack") if self.lane == "main" else ("urgent", "live_answer")
        subscriptions = [(topics.all_devices(ch, self.share_group), 1) for ch in channels]
        if self.lane == "main":  # another hub node's last will must not stand while this one is up
            subscriptions.append((topics.hub_status(), 1))
        client.subscribe(subscriptions)
        self._connected.set()
        self.publish_status()
        logger.info("ingest (%s lane) connected to %s:%s", self.lane, self._host, self._port)
        if self.on_connected:
            self.on_connected()

    def publish_status(self) -> None:
        """The hub's status, retained: online, this run's id, and whether the urgent lane is up.
        Published when the main lane connects and again when the urgent lane does."""
        if self.lane != "main" or not self._connected.is_set():
            return
        self._client.publish(topics.hub_status(), encode_hub_status("online", time.time(), self.boot,
                                                                    urgent_lane=self.urgent_lane_ready()),
                             qos=1, retain=True)

    def _on_hub_status(self, msg: mqtt.MQTTMessage) -> None:
        """Several hub nodes share the broker: when one dies its last will says the hub is offline,
        and devices would hold their resends. A node that is up says otherwise at once."""
        try:
            status = decode_hub_status(msg.payload)
        except ProtocolError:
            return
        if status.state == "offline" and status.boot != self.boot and not self._stop.is_set():
            logger.info("another hub node (run %s) went away; this one (run %s) is up", status.boot, self.boot)
            self.publish_status()

    def _refused(self, reason: str) -> None:
        self.fatal = f"the broker at {self._host}:{self._port} refused the hub's login: {reason}"
        logger.error("%s", self.fatal)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set() and self.fatal is None:
            logger.warning("ingest lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.hub_status():
            return self._on_hub_status(msg)
        if msg.topic.endswith("/live_answer"):  # signalling: handed over at once, nothing stored
            try:
                device_id, _ = topics.parse_device_topic(msg.topic)
            except ProtocolError as exc:
                return self._bad(msg, exc.reason)
            if self.on_live_answer is not None:
                self.on_live_answer(device_id, msg.payload)
            return
        self._queue.put(msg)

    # --- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._storing = True
            batch = [first]
            while len(batch) < self._batch_limit:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self.yield_to is not None:
                deadline = time.monotonic() + MAX_YIELD_S
                while self.yield_to() and time.monotonic() < deadline:
                    time.sleep(0.001)
            started = time.monotonic()
            while True:
                try:
                    self._handle(batch)
                    self._fit_batch(len(batch), time.monotonic() - started)
                    break
                except _DatabaseAway as exc:  # keep the batch, retry, ack nothing
                    self.counters["db_errors"] += 1
                    logger.error("cannot store a batch of %d messages, retrying: %s", len(batch), exc.__cause__)
                    if self._stop.wait(1.0):
                        return
                except Exception:  # a defect, not the database: never let it stop ingest
                    self.counters["db_errors"] += 1
                    logger.exception("ingest failed on a batch of %d messages; they are dropped", len(batch))
                    break
            self._storing = False

    def _fit_batch(self, size: int, took: float) -> None:
        """Keep the main lane's transactions near ``BATCH_TARGET_S``, so the urgent lane (and an
        alarm's ticket change) never waits long for the database: smaller batches when the
        machine is busy, back up to ``batch_max`` when it is not."""
        if self.yield_to is None or size < self._batch_limit // 2:
            return
        if took > BATCH_TARGET_S:
            self._batch_limit = max(MIN_BATCH, int(self._batch_limit * BATCH_TARGET_S / took))
        else:
            self._batch_limit = min(self.batch_max, self._batch_limit * 2)

    def busy(self) -> bool:
        """Messages are waiting or being stored (the urgent lane's, for the main lane to yield to)."""
        return self._storing or not self._queue.empty()

    def _bad(self, msg: mqtt.MQTTMessage, reason: str) -> None:
        self.counters["malformed"] += 1
        logger.warning("malformed message on %s (%s): %r", msg.topic[:120], reason[:200], msg.payload[:80])

    def _decode(self, batch: list[mqtt.MQTTMessage]) -> list[_Message]:
        """Each message on its own: a bad one is counted and dropped, whatever it raises."""
        out: list[_Message] = []
        for msg in batch:
            try:
                device_id, channel = topics.parse_device_topic(msg.topic)
                if channel in ("event", "urgent"):
                    out.append(_Message(msg, device_id, "event", decode_event(msg.payload, topic_device=device_id)))
                elif channel == "status":
                    out.append(_Message(msg, device_id, "status", decode_status(msg.payload)))
                elif channel == "heartbeat":
                    out.append(_Message(msg, device_id, "heartbeat", decode_heartbeat(msg.payload)))
                elif channel == "cmd_ack":
                    out.append(_Message(msg, device_id, "cmd_ack", decode_command_ack(msg.payload)))
                else:
                    raise ProtocolError(f"devices do not publish on {channel!r}")
            except ProtocolError as exc:
                self._bad(msg, exc.reason)
            except Exception as exc:  # a decoder defect costs one message, not the hub
                logger.exception("decoder failed on a message on %s", msg.topic[:120])
                self._bad(msg, f"{type(exc).__name__}: {exc}")
        return out

    def _handle(self, batch: list[mqtt.MQTTMessage]) -> None:
        messages = self._decode(batch)
        if not messages:
            return
        try:
            stored = self._store(messages)
        except _DatabaseAway:
            raise
        except Exception as exc:
            # one message the database refused spoils the transaction: store them one by one,
            # so the good ones commit and only the refused one is counted and dropped
            logger.warning("a batch of %d messages failed (%s); storing them one by one",
                           len(messages), str(exc)[:200])
            stored = []
            for m in messages:
                try:
                    stored.extend(self._store([m]))
                except _DatabaseAway:
                    raise
                except Exception as exc1:
                    logger.warning("device=%s message refused by the database", m.device_id)
                    self._bad(m.msg, f"database refused it: {str(exc1)[:200]}")
        events = {m.value.id: m.value for m in stored if m.channel == "event"}
        self._ack(events.values())  # only now: each alarm's ticket was committed with it
        if self.rules:
            try:
                rule_tickets.apply(self.engine, self.rules, [e for e in events.values() if e.type in ("motion", "face")])
            except sa.exc.SQLAlchemyError:
                self.counters["db_errors"] += 1
                logger.exception("ticket rules failed for a batch of %d events", len(events))

    def _store(self, messages: list[_Message]) -> list[_Message]:
        """Store the messages in one transaction; returns them once committed."""
        events: dict[str, Event] = {}
        for m in messages:
            if m.channel == "event":
                events[m.value.id] = m.value
        now = time.time()
        online: set[str] = set()
        acks = 0
        gate = WRITE_GATE.urgent() if self.lane == "urgent" else WRITE_GATE.bulk(MAX_YIELD_S)
        try:
            with gate, self.engine.begin() as conn:
                registry.ensure_devices(conn, {m.device_id for m in messages})
                new_ids = eventlog.store_events(conn, list(events.values()))
                eventlog.merge_alarm_updates(conn, list(events.values()))
                eventlog.merge_motion_updates(conn, [e for e in events.values() if e.id in new_ids])
                for ev in events.values():
                    if ev.type == "alarm":  # once per event id: a resent alarm finds its ticket
                        alarms.open_alarm_ticket(conn, ev.device_id, ev.id, now)
                    elif ev.type == "alarm_ack" and ev.id in new_ids:
                        alarms.lan_acknowledged(conn, ev, now)
                statuses, heartbeats = [], {}
                for m in messages:
                    if m.channel == "status":
                        live = not m.msg.retain
                        statuses.append((m.device_id, m.value, live))
                        if live and m.value.state == "online":
                            online.add(m.device_id)
                    elif m.channel == "heartbeat":
                        heartbeats[m.device_id] = asdict(m.value)  # the latest of each device
                    elif m.channel == "cmd_ack":
                        acks += commands.acked(conn, m.device_id, m.value, now)
                registry.set_statuses(conn, statuses)  # a broker restart: every birth at once, in batches
                registry.set_heartbeats(conn, heartbeats)
                if online:
                    commands.wake_devices(conn, online, now=now)
                registry.touch_many(conn, {e.device_id for e in events.values()}, now)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise _DatabaseAway() from exc
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise _DatabaseAway() from exc
            raise
        self.counters["events_new"] += len(new_ids)
        self.counters["events_duplicate"] += len(events) - len(new_ids)
        self.counters["command_acks"] += acks
        committed = time.time()
        metrics.INGEST_BATCH.labels(self.lane).observe(len(messages))
        lag = metrics.INGEST_LAG.labels(self.lane)
        for ev in events.values():
            if ev.id in new_ids:
                lag.observe(max(0.0, committed - ev.ts))
                if ev.type == "alarm":
                    metrics.ALARM_TICKET.observe(max(0.0, committed - ev.ts))
        if online and self.on_device_online:
            self.on_device_online()
        return messages

    def publish_live(self, device_id: str, payload: bytes) -> bool:
        """Publish a live-video request to a device (QoS 1); False if the broker is not connected."""
        if not self._connected.is_set():
            return False
        return self._client.publish(topics.live(device_id), payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def publish_command(self, device_id: str, payload: bytes) -> bool:
        """Publish an encoded command to a device (QoS 1); False if the broker is not connected."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topics.command(device_id), payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _ack(self, events) -> None:
        by_device: dict[str, list[str]] = defaultdict(list)
        for ev in events:
            by_device[ev.device_id].append(ev.id)
        for device_id, ids in by_device.items():
            self._client.publish(topics.ack(device_id), encode_ack(ids), qos=1)
