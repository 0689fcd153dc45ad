"""A fleet of simulated devices in one process (``xl-edge fleet-sim``): thousands of MQTT
connections on one asyncio loop, each a device with its own login, birth and last will,
heartbeats, events at a set rate that are sent again until the hub acks them, and alarms.

It speaks MQTT 3.1.1 itself (CONNECT with will, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, PINGREQ):
a thread and a socket per device, as a client library would make them, do not fit 20,000
devices on a small machine. The payloads are the real ones (``protocols.messages``)."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from dataclasses import dataclass, field

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import (Event, Heartbeat, Priority, Status, decode_ack, encode_event, encode_heartbeat,
                                encode_status)

logger = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, will_topic: str, will: bytes,
                   keepalive: int) -> bytes:
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain, will QoS 1, will, clean
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _str(client_id) + _str(will_topic) + \
        _str(will) + _str(username) + _str(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, (qos << 1) | int(retain), body)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first >> 4, first & 0x0F, await reader.readexactly(length) if length else b""


@dataclass
class FleetStats:
    connected: int = 0
    connects: int = 0
    connect_failures: int = 0
    events_sent: int = 0
    events_resent: int = 0
    events_acked: int = 0
    alarms_sent: int = 0
    heartbeats: int = 0
    first_connect_s: list[float] = field(default_factory=list)


class SimDevice:
    """One device: connects (and reconnects with backoff), births, heartbeats, events, acks."""

    def __init__(self, fleet: "Fleet", device_id: str, password: str):
        self.fleet, self.id, self.password = fleet, device_id, password
        self.unacked: dict[str, tuple[bytes, float]] = {}  # event id -> (payload, sent at)
        self.seq = 0
        self.writer: asyncio.StreamWriter | None = None
        self.packet_id = 0
        self.silent = False  # stops talking (and keeps its socket): the broker's keepalive finds out
        self._counted = 0  # 1 while this device counts in the fleet's ``connected``

    def _next_id(self) -> int:
        self.packet_id = self.packet_id % 65535 + 1
        return self.packet_id

    def _send(self, data: bytes) -> None:
        if self.writer is not None and not self.silent:
            self.writer.write(data)

    async def run(self) -> None:
        f = self.fleet
        backoff = 1.0
        await asyncio.sleep(random.uniform(0, f.connect_spread_s))
        while not f.stopping:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(f.host, f.port), 30)
            except (OSError, asyncio.TimeoutError):
                f.stats.connect_failures += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 30)
                continue
            self.writer = writer
            try:
                await self._session(reader, writer, started)
                backoff = 1.0
            except (OSError, asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
                pass
            finally:
                if self.writer is not None:
                    f.stats.connected -= self._counted
                    self._counted = 0
                self.writer = None
                writer.close()
            if self.silent:  # a device that fell silent does not come back
                return
            if not f.stopping:
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 30)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, started: float) -> None:
        f = self.fleet
        will = encode_status(Status("offline", time.time()))
        writer.write(connect_packet(self.id, self.id, self.password, topics.status(self.id), will, f.keepalive_s))
        kind, _, body = await asyncio.wait_for(read_packet(reader), 30)
        if kind != CONNACK or len(body) < 2 or body[1] != 0:
            raise ConnectionError(f"refused: {body!r}")
        f.stats.connects += 1
        f.stats.connected += 1
        self._counted = 1
        if f.stats.connects <= f.size:
            f.stats.first_connect_s.append(time.monotonic() - f.started)
        f.connected_at[self.id] = time.monotonic()
        writer.write(packet(SUBSCRIBE, 2, struct.pack("!H", self._next_id()) + _str(topics.ack(self.id)) + b"\x01"))
        birth = Status("online", time.time(), kind="camera-box", model="fleet-sim", software="fleet-sim",
                       grid_code=f.grid_code)
        writer.write(publish_packet(topics.status(self.id), encode_status(birth), qos=1, packet_id=self._next_id(),
                                    retain=True))
        for payload, _ in list(self.unacked.values()):  # what the hub has not acked yet goes again
            writer.write(publish_packet(topics.event(self.id), payload, qos=1, packet_id=self._next_id()))
            f.stats.events_resent += 1
        tasks = [asyncio.ensure_future(self._talk()), asyncio.ensure_future(self._listen(reader))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        f = self.fleet
        while True:
            kind, flags, body = await read_packet(reader)
            if kind == PUBLISH:
                n = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + n].decode()
                rest = body[2 + n:]
                if (flags >> 1) & 3:
                    self._send(packet(PUBACK, 0, rest[:2]))
                    rest = rest[2:]
                if topic.endswith("/ack"):
                    try:
                        ids = decode_ack(rest)
                    except Exception:
                        continue
                    for event_id in ids:
                        if self.unacked.pop(event_id, None) is not None:
                            f.stats.events_acked += 1
                            f.on_acked(self.id, event_id)

    async def _talk(self) -> None:
        f = self.fleet
        next_hb = time.monotonic() + random.uniform(0, f.heartbeat_s)
        next_event = time.monotonic() + random.expovariate(1 / f.event_every_s) if f.event_every_s else float("inf")
        next_alarm = time.monotonic() + random.expovariate(1 / f.alarm_every_s) if f.alarm_every_s else float("inf")
        next_resend = time.monotonic() + f.ack_timeout_s
        while True:
            now = time.monotonic()
            if now >= next_hb:
                hb = Heartbeat(time.time(), now - f.started, 10_000_000_000, len(self.unacked))
                self._send(publish_packet(topics.heartbeat(self.id), encode_heartbeat(hb)))
                f.stats.heartbeats += 1
                next_hb = now + f.heartbeat_s
            if now >= next_event:
                if not f.quiet:
                    self._event("motion", Priority.NORMAL, {"camera": "sim", "zones": ["gate"]})
                next_event = now + random.expovariate(1 / f.event_every_s)
            if now >= next_alarm:
                if not f.quiet:
                    self._event("alarm", Priority.URGENT, {"source": "button", "presses": 1})
                    f.stats.alarms_sent += 1
                next_alarm = now + random.expovariate(1 / f.alarm_every_s)
            if now >= next_resend:
                for event_id, (payload, sent) in list(self.unacked.items()):
                    if now - sent >= f.ack_timeout_s:
                        self._send(publish_packet(topics.event(self.id), payload, qos=1, packet_id=self._next_id()))
                        self.unacked[event_id] = (payload, now)
                        f.stats.events_resent += 1
                next_resend = now + f.ack_timeout_s / 2
            if self.writer is not None:
                await self.writer.drain()
            await asyncio.sleep(max(0.01, min(next_hb, next_event, next_alarm, next_resend) - time.monotonic()))

    def _event(self, kind: str, priority: int, data: dict) -> None:
        f = self.fleet
        self.seq += 1
        ev = Event(id=f.ids.new(), device_id=self.id, type=kind, ts=time.time(), seq=self.seq, priority=priority,
                   data=data)
        payload = encode_event(ev)
        self.unacked[ev.id] = (payload, time.monotonic())
        f.sent_at[ev.id] = time.time()
        f.made.add(ev.id)
        self._send(publish_packet(topics.event(self.id), payload, qos=1, packet_id=self._next_id()))
        f.stats.events_sent += 1


class Fleet:
    """``size`` simulated devices against the broker at ``host:port``; ``credentials`` maps each
    device id to its MQTT password."""

    def __init__(self, credentials: dict[str, str], host: str, port: int, *, grid_code: str | None = None,
                 heartbeat_s: float = 30.0, event_every_s: float = 60.0, alarm_every_s: float = 0.0,
                 ack_timeout_s: float = 30.0, keepalive_s: int = 60, connect_spread_s: float = 0.0):
        self.host, self.port, self.grid_code = host, port, grid_code
        self.heartbeat_s, self.event_every_s, self.alarm_every_s = heartbeat_s, event_every_s, alarm_every_s
        self.ack_timeout_s, self.keepalive_s, self.connect_spread_s = ack_timeout_s, keepalive_s, connect_spread_s
        self.devices = [SimDevice(self, d, p) for d, p in credentials.items()]
        self.size = len(self.devices)
        self.stats = FleetStats()
        self.ids = EventIdGenerator()
        self.sent_at: dict[str, float] = {}
        self.made: set[str] = set()  # every event id the fleet made
        self.quiet = False  # no new events or alarms (heartbeats go on)
        self.connected_at: dict[str, float] = {}
        self.stopping = False
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task] = []

    def on_acked(self, device_id: str, event_id: str) -> None:
        self.sent_at.pop(event_id, None)

    def start(self) -> None:
        """Start every device (inside the running loop)."""
        self.started = time.monotonic()
        self._tasks = [asyncio.ensure_future(d.run()) for d in self.devices]

    async def stop(self) -> None:
        self.stopping = True
        for d in self.devices:
            if d.writer is not None:
                try:
                    d.writer.write(packet(DISCONNECT, 0, b""))
                except (OSError, RuntimeError):
                    pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def unacked(self) -> int:
        return sum(len(d.unacked) for d in self.devices)
