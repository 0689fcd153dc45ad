"""Edge to hub sync over MQTT (paho-mqtt, QoS 1).

Threads: paho's network loop owns the socket and only hands messages over (acks and the
hub's status go into a queue for the sync worker, commands into a queue for the urgent
worker). The sync worker drains the outbox's normal lanes by sequence with a bounded in-flight
window and removes acked events (``mark_synced``, in short transactions). The urgent worker
sends the urgent lane (alarms) beyond the window and applies the hub's commands, so neither
waits behind a backlog, its acks or a pass of the sync worker. The cursors and the in-flight
set are shared under one lock, never held across a store write. An event
leaves the outbox only when the hub acks it; whatever was in flight is sent again after a
reconnect, when the hub comes back online (or a new hub run is seen: the hub's status names its
run), or when no ack came within ``ack_timeout_s`` while the hub is online; while the hub is known
to be away nothing is resent (resends would only queue at the broker in front of new alarms).

Hub commands go to ``on_command``, which applies each command id once; the ids are acked on
``cmd_ack`` once applied (or found applied before), so the hub stops sending them.
"""

from __future__ import annotations

import collections
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from common.mqtt import make_client, on_connack
from protocols import ProtocolError, topics
from protocols.live import LiveAnswer, LiveRequest, decode_request, encode_answer
from protocols.deviceconfig import EdgeConfig
from protocols.messages import (Command, Heartbeat, HubStatus, Priority, Status, decode_ack, decode_command,
                                decode_hub_status, encode_command_ack, encode_heartbeat, encode_status)

from .config import mqtt_password
from .store import Store

logger = logging.getLogger(__name__)

URGENT_BURST = 64  # urgent rows sent per pass even when the window is full


class FpsMeters:
    """Frame rates and states (up / down / stalled) per camera, read by the heartbeat and the LAN
    page. Capture threads call ``tick``; the camera watchdog sets the states. A rate is the frames
    of the last ``WINDOW_S`` seconds, the same for every reader (reading it changes nothing)."""

    WINDOW_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}
        self._frames: dict[str, collections.deque[float]] = {}

    def add_camera(self, name: str) -> None:
        with self._lock:
            self._frames.setdefault(name, collections.deque())

    def tick(self, name: str, frames: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._frames.setdefault(name, collections.deque())
            times.extend([now] * frames)
            while times and times[0] < now - self.WINDOW_S:
                times.popleft()

    def set_states(self, states: dict[str, str]) -> None:
        with self._lock:
            self._states = dict(states)

    def states(self) -> dict[str, str]:
        with self._lock:
            return dict(self._states)

    def rates(self) -> dict[str, float]:
        now = time.monotonic()
        with self._lock:
            return {name: sum(1 for t in times if t >= now - self.WINDOW_S) / self.WINDOW_S
                    for name, times in self._frames.items()}


class SyncEngine:
    def __init__(self, cfg: EdgeConfig, store: Store, meters: FpsMeters | None = None, *,
                 software: str = "", on_fatal: Callable[[str], None] | None = None,
                 on_acked: Callable[[list[str]], None] | None = None,
                 on_sent: Callable[[list[str]], None] | None = None,
                 on_command: Callable[[Command], object] | None = None,
                 on_live: "Callable[[LiveRequest, Callable[[LiveAnswer], None]], None] | None" = None):
        self.cfg = cfg
        self.store = store
        self.meters = meters or FpsMeters()
        self.device_id = cfg.device.id
        self.on_fatal = on_fatal
        self.on_acked = on_acked
        self.on_sent = on_sent
        self.on_command = on_command
        self.on_live = on_live  # the hub's live-video signalling (offer / close), answered through reply
        self.fatal: str | None = None
        self.counters = {"published": 0, "acked": 0, "bad_acks": 0, "resends": 0, "connects": 0,
                         "commands": 0, "commands_failed": 0}
        self.hub_online: bool | None = None
        self.hub_boot: str | None = None
        self.hub_urgent_lane = False  # the hub's status offers the urgent topic
        self.last_hub_contact: float | None = None
        self._started = time.monotonic()
        self._software = software
        self._inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._inflight: dict[str, float] = {}
        self._cursor = {p: 0 for p in Priority}
        self._state = threading.RLock()  # _inflight and _cursor
        self._urgent_wake = threading.Event()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name=f"sync-{self.device_id}", daemon=True)
        self._urgent = threading.Thread(target=self._run_urgent, name=f"urgent-{self.device_id}", daemon=True)
        self._client = self._make_client()

    # --- paho wiring (runs in paho's network thread) -----------------------------------------

    def _make_client(self) -> mqtt.Client:
        b = self.cfg.broker
        client = make_client(f"xl-edge-{self.device_id}", username=self.cfg.mqtt_username(),
                             password=mqtt_password(self.cfg), clean_session=True,
                             will=(topics.status(self.device_id), encode_status(Status(state="offline", ts=time.time()))),
                             tls=b.tls, ca_file=str(self.cfg.resolve(b.ca_file)) if b.ca_file else None,
                             reconnect=(b.reconnect_min_s, b.reconnect_max_s),
                             max_inflight=self.cfg.sync.inflight_window + URGENT_BURST * 4)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not on_connack(client, reason_code, fatal=lambda reason: self._fail(
                f"the broker at {self.cfg.broker.url} refused the login of {self.cfg.mqtt_username()!r}: "
                f"{reason}; check broker.username and the password"),
                transient=lambda reason: logger.warning("device=%s broker refused the connection: %s; retrying",
                                                        self.device_id, reason)):
            return
        self.counters["connects"] += 1
        logger.info("device=%s connected to %s", self.device_id, self.cfg.broker.url)
        client.subscribe([(topics.ack(self.device_id), 1), (topics.command(self.device_id), 1),
                          (topics.live(self.device_id), 1), (topics.hub_status(), 1)])
        d = self.cfg.device
        birth = Status(state="online", ts=time.time(), kind=d.kind, model=d.model, software=self._software,
                       grid_code=d.grid_code, location=d.location.model_dump())
        client.publish(topics.status(self.device_id), encode_status(birth), qos=1, retain=True)
        self._connected.set()
        self._inbox.put(("resend", "connected"))
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set() and self.fatal is None:
            logger.warning("device=%s lost the broker (%s); reconnecting with backoff", self.device_id, reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == topics.hub_status():
                self._inbox.put(("hub", (decode_hub_status(msg.payload), bool(msg.retain))))
            elif msg.topic == topics.command(self.device_id):
                self._commands.put(decode_command(msg.payload))
                self._urgent_wake.set()
                return
            elif msg.topic == topics.live(self.device_id):
                self._live(decode_request(msg.payload))
                return
            else:
                self._inbox.put(("ack", decode_ack(msg.payload)))
        except ProtocolError as exc:
            self.counters["bad_acks"] += 1
            logger.warning("device=%s dropped a bad message on %s: %s", self.device_id, msg.topic, exc.reason)
            return
        self._wake.set()

    def _live(self, req: LiveRequest) -> None:
        if self.on_live is None:
            if req.op == "offer":
                self._reply_live(LiveAnswer(session=req.session, ts=time.time(), error="no live video on this device"))
            return
        try:
            self.on_live(req, self._reply_live)
        except Exception:  # a defect in the live server must not take the MQTT thread with it
            logger.exception("device=%s live request %s failed", self.device_id, req.session)
            self._reply_live(LiveAnswer(session=req.session, ts=time.time(), error="the device failed to answer"))

    def _reply_live(self, answer: LiveAnswer) -> None:
        self._client.publish(topics.live_answer(self.device_id), encode_answer(answer), qos=1)

    def _fail(self, reason: str) -> None:
        self.fatal = reason
        logger.error("device=%s %s", self.device_id, reason)
        self._stop.set()
        self._wake.set()
        self._urgent_wake.set()
        if self.on_fatal:
            self.on_fatal(reason)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        b = self.cfg.broker
        self._client.connect_async(b.host, b.port, keepalive=b.keepalive_s)
        self._client.loop_start()
        self._worker.start()
        self._urgent.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._urgent_wake.set()
        for thread in (self._worker, self._urgent):
            if thread.is_alive():
                thread.join(timeout=10)
        if self._connected.is_set():
            info = self._client.publish(topics.status(self.device_id),
                                        encode_status(Status(state="offline", ts=time.time())), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()

    def alive(self) -> bool:
        return self.fatal is None and self._worker.is_alive() and self._urgent.is_alive()

    def notify(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()
        self._urgent_wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        next_heartbeat = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                self._take_inbox()
                self._check_timeouts()
                if self._connected.is_set():
                    self._fill_window()
                    if time.monotonic() >= next_heartbeat:
                        next_heartbeat = time.monotonic() + self.cfg.sync.heartbeat_interval_s
                        self._heartbeat()
            except Exception:  # a bug in one pass must not end syncing for good
                logger.exception("device=%s sync pass failed; retrying", self.device_id)
                time.sleep(1)

    def _run_urgent(self) -> None:
        while not self._stop.is_set():
            self._urgent_wake.wait(timeout=0.5)
            self._urgent_wake.clear()
            try:
                while True:
                    try:
                        self._command(self._commands.get_nowait())
                    except queue.Empty:
                        break
                if self._connected.is_set():
                    self._send_lane(Priority.URGENT, URGENT_BURST, time.monotonic())
            except Exception:
                logger.exception("device=%s urgent pass failed; retrying", self.device_id)
                time.sleep(0.2)

    def _take_inbox(self) -> None:
        acked: list[str] = []
        resend = False
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "ack":
                acked.extend(value)  # type: ignore[arg-type]
                self.last_hub_contact = time.time()
            elif kind == "hub":
                status: HubStatus
                status, retained = value  # type: ignore[misc]
                online = status.state == "online"
                new_run = online and status.boot is not None and self.hub_boot not in (None, status.boot)
                # a live (not retained) "online" is the hub connecting right now: after a broker
                # restart it may have missed what was sent before it was back, whatever we knew
                came_back = online and (self.hub_online is not True or new_run or not retained)
                self.hub_online = online
                self.hub_urgent_lane = online and status.urgent_lane
                if status.boot is not None:
                    self.hub_boot = status.boot
                resend = resend or came_back
                if came_back:
                    logger.info("device=%s hub is online%s", self.device_id, " (a new run)" if new_run else "")
            elif kind == "resend":
                resend = True
        if acked:
            removed = self.store.mark_synced(acked)
            self.counters["acked"] += removed
            with self._state:
                for event_id in acked:
                    self._inflight.pop(event_id, None)
            if self.on_acked:
                self.on_acked(acked)
        if resend:
            self._rewind()

    def _command(self, cmd: Command) -> None:
        logger.info("device=%s command from the hub: %s", self.device_id, cmd)
        self.counters["commands"] += 1
        try:
            if self.on_command:
                self.on_command(cmd)
        except Exception:  # not applied: no ack, so the hub sends it again
            self.counters["commands_failed"] += 1
            logger.exception("device=%s command %s failed; the hub will send it again", self.device_id, cmd.id)
            return
        if cmd.id is not None:
            self._client.publish(topics.command_ack(self.device_id), encode_command_ack([cmd.id]), qos=1)

    def _rewind(self) -> None:
        """Send everything unacked again, from the front of each lane."""
        with self._state:
            if self._inflight:
                self.counters["resends"] += len(self._inflight)
            self._inflight.clear()
            self._cursor = {p: 0 for p in Priority}
        self._urgent_wake.set()

    def _check_timeouts(self) -> None:
        if self.hub_online is False:
            return  # the hub's session queues what was sent; its return rewinds
        with self._state:
            if not self._inflight:
                return
            oldest = min(self._inflight.values())
        if time.monotonic() - oldest > self.cfg.sync.ack_timeout_s:
            logger.warning("device=%s %d event(s) not acked within %.0f s; sending again", self.device_id,
                           len(self._inflight), self.cfg.sync.ack_timeout_s)
            self._rewind()

    def _fill_window(self) -> None:
        """The normal lanes, highest first, within the in-flight window (the urgent worker sends
        the urgent lane)."""
        now = time.monotonic()
        for lane in sorted((p for p in Priority if p != Priority.URGENT), reverse=True):
            with self._state:
                room = self.cfg.sync.inflight_window - len(self._inflight)
            if room <= 0:
                return
            sent, more = self._send_lane(lane, room, now)
            if sent is None:
                return
            if more:
                self._wake.set()  # more is waiting in this lane
                return

    def _send_lane(self, lane: Priority, limit: int, now: float) -> tuple[list[str] | None, bool]:
        """Publish up to ``limit`` rows of a lane after its cursor. Returns the ids sent (None if
        the connection dropped: the next connect rewinds) and whether more may be waiting."""
        urgent = lane == Priority.URGENT and self.hub_urgent_lane
        event_topic = topics.urgent(self.device_id) if urgent else topics.event(self.device_id)
        sent: list[str] = []
        with self._state:
            rows = self.store.fetch_lane(lane, self._cursor[lane], limit)
            for row in rows:
                info = self._client.publish(event_topic, row.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                self._inflight[row.event_id] = now
                self._cursor[lane] = row.seq
                sent.append(row.event_id)
        self.counters["published"] += len(sent)
        if sent and lane == Priority.URGENT and self.on_sent:
            self.on_sent(sent)
        if len(sent) < len(rows):
            return None, False
        if lane == Priority.URGENT and len(rows) == limit:
            self._urgent_wake.set()
        return sent, len(rows) == limit

    def _heartbeat(self) -> None:
        usage = shutil.disk_usage(self.store.path.parent)
        hb = Heartbeat(ts=time.time(), uptime_s=time.monotonic() - self._started, disk_free_bytes=usage.free,
                       outbox_depth=self.store.outbox_depth(), cameras=self.meters.rates(),
                       camera_states=self.meters.states())
        self._client.publish(topics.heartbeat(self.device_id), encode_heartbeat(hb), qos=0)
