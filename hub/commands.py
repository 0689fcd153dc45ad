"""Durable hub → device commands: an outbox in the database, sent until the device acks.

A command is written in the transaction of the change that causes it (accepting an alarm's
ticket writes ``help_coming`` with the ticket's new state), so it cannot be lost between the two.
``CommandSender`` publishes what is due: at once when written, again when the device comes
back online (its birth message), when the hub (re)connects to the broker, and every
``resend_s`` until the device acks the id on ``cmd_ack`` or the command expires. The device
applies each id once, so a resend is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from protocols.ids import EventIdGenerator
from protocols.messages import Command, encode_command

from .schema import device_commands

logger = logging.getLogger(__name__)

TTL_S = 24 * 3600.0  # a command nobody acked in a day is stale (the alarm is long handled)
RESEND_S = 30.0
_ids = EventIdGenerator()


def enqueue(conn: sa.Connection, device_id: str, command: str, *, alarm_id: str | None = None,
            event_id: str | None = None, by: str | None = None, now: float | None = None,
            ttl_s: float = TTL_S) -> str:
    """Write a command in the caller's transaction; returns its id."""
    now = time.time() if now is None else now
    cmd_id = _ids.new()
    conn.execute(device_commands.insert().values(id=cmd_id, device_id=device_id, command=command, alarm_id=alarm_id,
                                                 event_id=event_id, by=by, created_at=now, expires_at=now + ttl_s,
                                                 due_at=now))
    return cmd_id


def exists(conn: sa.Connection, device_id: str, command: str, alarm_id: str) -> bool:
    return conn.execute(sa.select(device_commands.c.id).where(device_commands.c.device_id == device_id)
                        .where(device_commands.c.command == command)
                        .where(device_commands.c.alarm_id == alarm_id)).first() is not None


def wake(conn: sa.Connection, *, device_id: str | None = None, now: float | None = None) -> int:
    """Make a device's (or every device's) unacked commands due now."""
    now = time.time() if now is None else now
    q = device_commands.update().where(device_commands.c.acked_at.is_(None)) \
        .where(device_commands.c.expires_at > now).where(device_commands.c.due_at > now)
    if device_id is not None:
        q = q.where(device_commands.c.device_id == device_id)
    return conn.execute(q.values(due_at=now)).rowcount


def wake_devices(conn: sa.Connection, device_ids: Iterable[str], *, now: float | None = None) -> int:
    """Make these devices' unacked commands due now (they came online), in one statement."""
    ids = list(device_ids)
    if not ids:
        return 0
    now = time.time() if now is None else now
    return conn.execute(device_commands.update().where(device_commands.c.acked_at.is_(None))
                        .where(device_commands.c.expires_at > now).where(device_commands.c.due_at > now)
                        .where(device_commands.c.device_id.in_(ids)).values(due_at=now)).rowcount


def acked(conn: sa.Connection, device_id: str, ids: Iterable[str], now: float | None = None) -> int:
    """The device applied these commands; only its own commands are marked."""
    ids = list(ids)
    if not ids:
        return 0
    now = time.time() if now is None else now
    return conn.execute(device_commands.update().where(device_commands.c.device_id == device_id)
                        .where(device_commands.c.id.in_(ids)).where(device_commands.c.acked_at.is_(None))
                        .values(acked_at=now, due_at=None)).rowcount


def command_of(row) -> Command:
    return Command(command=row.command, ts=row.created_at, alarm_id=row.alarm_id, id=row.id,
                   expires=row.expires_at, by=row.by, event_id=row.event_id)


class CommandSender:
    """One thread: publishes due commands through ``publish(device_id, payload) -> bool`` (False:
    not connected, try later) and schedules their next send."""

    def __init__(self, engine: sa.Engine, publish: Callable[[str, bytes], bool], *,
                 connected: Callable[[], bool], resend_s: float = RESEND_S, poll_s: float = 0.5,
                 may_run: Callable[[], bool] = lambda: True):
        """``may_run``: this node holds the commands lease (one sender among several hub nodes)."""
        self.engine, self.publish, self.connected, self.may_run = engine, publish, connected, may_run
        self.resend_s, self.poll_s = resend_s, poll_s
        self.counters = {"sent": 0, "resent": 0, "expired": 0}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Something was written or became due: send now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        was_connected = False
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                connected = self.connected() and self.may_run()
                if connected and not was_connected:  # start, broker back, lease taken: resend all unacked
                    with self.engine.begin() as conn:
                        wake(conn)
                was_connected = connected
                if connected:
                    self.send_due()
            except Exception:
                logger.exception("command pass failed; trying again")
                self._stop.wait(1.0)

    def send_due(self, now: float | None = None, limit: int = 500) -> int:
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(device_commands).where(device_commands.c.due_at <= now)
                                .order_by(device_commands.c.due_at).limit(limit)).all()
        sent, expired = [], []
        for row in rows:
            if row.expires_at <= now:
                expired.append(row.id)
                continue
            if not self.publish(row.device_id, encode_command(command_of(row))):
                break
            sent.append(row.id)
            self.counters["resent" if row.sent_count else "sent"] += 1
        with self.engine.begin() as conn:
            if sent:
                conn.execute(device_commands.update().where(device_commands.c.id.in_(sent))
                             .where(device_commands.c.acked_at.is_(None))
                             .values(due_at=now + self.resend_s, last_sent_at=now,
                                     sent_count=device_commands.c.sent_count + 1))
            if expired:
                conn.execute(device_commands.update().where(device_commands.c.id.in_(expired)).values(due_at=None))
                self.counters["expired"] += len(expired)
                logger.warning("%d command(s) expired unacked", len(expired))
        if len(rows) == limit:
            self._wake.set()
        return len(sent)
