"""The edge's durable store: events and the outbox in one SQLite file (WAL).

One connection, guarded by a lock, is the single writer. Every write is one transaction
with ``synchronous=FULL``: when ``add`` returns, the event and its outbox row are fsynced
to the WAL, so an alarm is on disk before anything else happens to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from protocols.ids import EventIdGenerator
from protocols.messages import EVENT_TYPES, Event, Priority, encode_event

from .storeschema import migrations

logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0


#: an alarm's states on the device, in order; a state never goes back
ALARM_STATES = ("pressed", "sent", "received", "help_coming", "closed")


@dataclass(frozen=True)
class AlarmRow:
    id: str
    state: str
    ts: float
    presses: int
    updated_at: float
    by: str | None
    via: str | None


class StoreError(Exception):
    """The store cannot take a write (disk full, file damaged)."""


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    priority: int | None = None
    ts: float | None = None
    id: str | None = None  # taken from ``Store.new_id()`` ahead of time, e.g. to link faces to motion


@dataclass(frozen=True)
class MediaRow:
    id: int
    event_id: str
    kind: str
    path: str
    bytes: int
    created_at: float


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    payload: bytes


class Store:
    def __init__(self, path: str | Path, device_id: str, *, listeners: list[Callable[[], None]] | None = None):
        self.path = Path(path)
        self.device_id = device_id
        #: called after each committed write, in order; the list is the caller's (components that
        #: want to hear of new events are appended to it as they are built, before anything runs)
        self.listeners: list[Callable[[], None]] = listeners if listeners is not None else []
        self._lock = threading.Lock()
        self._ids = EventIdGenerator()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self.db = Database(self._conn)
        migrations.apply(self.db)
        # WAL checkpoints run on a thread of their own, not inside whichever write crosses the
        # threshold: an alarm's write must not copy a backlog's pages into the database first
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpoint_stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="store-checkpoint", daemon=True)
        self._checkpointer.start()
        # readers (the LAN page, the heartbeat, the quota sweep) get their own read-only
        # connection per thread: with WAL they never wait for, or delay, the writer
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def new_id(self) -> str:
        """An event id for an event that will be added later (ids sort by creation time)."""
        return self._ids.new()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            self._readers.conn = conn
            with self._readers_lock:
                self._reader_conns.append(conn)
        yield conn

    def _checkpoints(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            while not self._checkpoint_stop.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    logger.warning("store checkpoint failed: %s", exc)
        finally:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One fsynced write transaction under the writer lock; ``StoreError`` if it fails."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.commit()
            except sqlite3.Error as exc:
                self._conn.rollback()
                raise StoreError(f"cannot {what} in {self.path}: {exc}") from exc

    def close(self) -> None:
        self._checkpoint_stop.set()
        self._checkpointer.join(timeout=10)
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass
            self._conn.close()
        with self._readers_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # --- writes -------------------------------------------------------------------------

    def add(self, type: str, data: dict[str, Any] | None = None, *, priority: int | None = None,
            ts: float | None = None) -> Event:
        return self.add_many([NewEvent(type, data or {}, priority, ts)])[0]

    def add_many(self, items: Iterable[NewEvent]) -> list[Event]:
        """Store events and queue them for the hub in one fsynced transaction. ``seq`` is taken
        inside the write lock, so another process writing the same file cannot collide."""
        items = list(items)
        now = time.time()
        with self._transaction(f"store {len(items)} event(s)") as conn:
            next_seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
            events = []
            for i, item in enumerate(items):
                prio = item.priority if item.priority is not None else EVENT_TYPES.get(item.type, Priority.NORMAL)
                events.append(Event(id=item.id or self._ids.new(), device_id=self.device_id, type=item.type,
                                    ts=item.ts if item.ts is not None else now, seq=next_seq + i,
                                    priority=int(prio), data=item.data))
            conn.executemany(
                "INSERT INTO events (id, seq, type, priority, ts, data, created_at) VALUES (?,?,?,?,?,?,?)",
                [(e.id, e.seq, e.type, e.priority, e.ts, json.dumps(e.data, ensure_ascii=False), now)
                 for e in events])
            conn.executemany(
                "INSERT INTO outbox (seq, event_id, priority, payload) VALUES (?,?,?,?)",
                [(e.seq, e.id, e.priority, encode_event(e)) for e in events])
            # an alarm's state row is born with its event (edge.alarms owns it from here)
            conn.executemany(
                "INSERT OR IGNORE INTO alarms (id, state, ts, presses, updated_at) VALUES (?,?,?,?,?)",
                [(e.id, "pressed", e.ts, int(e.data.get("presses", 1)), now) for e in events if e.type == "alarm"])
            conn.executemany(
                "UPDATE alarms SET presses = max(presses, ?), updated_at = ? WHERE id = ?",
                [(int(e.data.get("presses", 1)), now, e.data.get("alarm_id")) for e in events
                 if e.type == "alarm_update" and isinstance(e.data.get("presses"), int)])
            # a motion's end folds into the motion reported at its start (the LAN page reads one event)
            conn.executemany(
                "UPDATE events SET data = json_patch(data, ?) WHERE id = ? AND type = 'motion'",
                [(json.dumps({**{k: v for k, v in e.data.items() if k != "motion_id"}, "ended": True},
                             ensure_ascii=False), e.data.get("motion_id")) for e in events
                 if e.type == "motion_update" and isinstance(e.data.get("motion_id"), str)])
        if events:
            for listener in self.listeners:
                listener()
        return events

    def mark_synced(self, event_ids: list[str]) -> int:
        """The hub has stored these events: drop them from the outbox. Returns rows removed."""
        if not event_ids:
            return 0
        now = time.time()
        removed = 0
        # one short transaction per chunk: an alarm's write waits for one chunk at most, not for
        # a whole burst of acks (a lost chunk is only sent again; the hub knows it by id)
        for start in range(0, len(event_ids), 250):
            chunk = event_ids[start:start + 250]
            marks = ",".join("?" * len(chunk))
            with self._lock, self._conn:
                removed += self._conn.execute(f"DELETE FROM outbox WHERE event_id IN ({marks})", chunk).rowcount
                self._conn.execute(f"UPDATE events SET synced_at = ? WHERE id IN ({marks}) AND synced_at IS NULL",
                                   [now, *chunk])
        return removed

    # --- alarm states and applied commands (written only by edge.alarms) -------------------

    def advance_alarms(self, alarm_ids: Iterable[str], state: str, *, by: str | None = None,
                       via: str | None = None, command_id: str | None = None,
                       command: str | None = None) -> list[str] | None:
        """Move alarms forward to ``state`` (never back) in one fsynced transaction; with
        ``command_id``, record the command as applied in the same transaction. Returns the ids that
        moved, or None if ``command_id`` was applied before (nothing changes then)."""
        rank = ALARM_STATES.index(state)
        ids = list(alarm_ids)
        now = time.time()
        moved: list[str] = []
        with self._transaction("change alarm states") as conn:
            if command_id is not None and not conn.execute(
                    "INSERT OR IGNORE INTO applied_commands (id, command, applied_at) VALUES (?,?,?)",
                    (command_id, command or "", now)).rowcount:
                return None  # applied before: nothing to change (the empty transaction commits)
            for alarm_id in ids:
                row = conn.execute("SELECT state FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
                if row is None or ALARM_STATES.index(row[0]) >= rank:
                    continue
                conn.execute("UPDATE alarms SET state = ?, updated_at = ?, by = coalesce(?, by), "
                             "via = coalesce(?, via) WHERE id = ?", (state, now, by, via, alarm_id))
                moved.append(alarm_id)
        if moved:
            for listener in self.listeners:
                listener()
        return moved

    def alarms(self, *, since: float | None = None, ids: Iterable[str] | None = None,
               limit: int = 100) -> list[AlarmRow]:
        """Alarms newest first: those of ``ids`` (any number), or those since ``since``."""
        cols = "SELECT id, state, ts, presses, updated_at, by, via FROM alarms"
        with self._reading() as conn:
            if ids is None:
                where, args = (" WHERE ts >= ?", [since]) if since is not None else ("", [])
                rows = conn.execute(cols + where + " ORDER BY ts DESC, id DESC LIMIT ?", [*args, limit]).fetchall()
            else:
                wanted, rows = list(ids), []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    rows += conn.execute(cols + f" WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                rows.sort(key=lambda r: (r[2], r[0]), reverse=True)
                rows = rows[:limit]
        return [AlarmRow(*r) for r in rows]

    # --- clip uploads (written only by edge.clipupload) ----------------------------------------

    def request_upload(self, event_id: str, *, command_id: str | None = None, command: str | None = None) -> bool:
        """Queue the event's clip for upload; with ``command_id`` record the command as applied in
        the same transaction. False if that command was applied before."""
        now = time.time()
        with self._transaction("queue a clip upload") as conn:
            if command_id is not None and not conn.execute(
                    "INSERT OR IGNORE INTO applied_commands (id, command, applied_at) VALUES (?,?,?)",
                    (command_id, command or "", now)).rowcount:
                return False
            conn.execute("INSERT INTO uploads (event_id, state, created_at, updated_at) VALUES (?, 'pending', ?, ?) "
                         "ON CONFLICT (event_id) DO UPDATE SET state = 'pending', reason = NULL, updated_at = ?",
                         (event_id, now, now, now))
        return True

    def uploads(self, state: str = "pending", limit: int = 50) -> list[tuple[str, float, str | None]]:
        """(event id, queued at, the clip's media path or None while it is being written)."""
        with self._reading() as conn:
            return conn.execute(
                "SELECT u.event_id, u.created_at, (SELECT path FROM media m WHERE m.event_id = u.event_id "
                "AND m.kind = 'clip') FROM uploads u WHERE u.state = ? ORDER BY u.created_at LIMIT ?",
                (state, limit)).fetchall()

    def finish_upload(self, event_id: str, state: str, reason: str | None = None) -> None:
        with self._transaction("record a clip upload") as conn:
            conn.execute("UPDATE uploads SET state = ?, reason = ?, updated_at = ? WHERE event_id = ?",
                         (state, reason, time.time(), event_id))

    # --- reads --------------------------------------------------------------------------

    def fetch_lane(self, priority: int, after_seq: int, limit: int) -> list[OutboxRow]:
        """Outbox rows of one priority lane after ``after_seq``, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, event_id, payload FROM outbox WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
                (priority, after_seq, limit)).fetchall()
        return [OutboxRow(*r) for r in rows]

    def outbox_depth(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def event_ids(self) -> list[str]:
        with self._reading() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY seq")]

    # --- media ------------------------------------------------------------------------------

    def add_media(self, event_id: str, kind: str, path: str, size: int) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO media (event_id, kind, path, bytes, created_at) "
                               "VALUES (?,?,?,?,?)", (event_id, kind, path, size, time.time()))

    def media_bytes(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT coalesce(sum(bytes), 0) FROM media").fetchone()[0]

    def media_of(self, event_id: str) -> list[MediaRow]:
        with self._reading() as conn:
            rows = conn.execute("SELECT id, event_id, kind, path, bytes, created_at FROM media "
                                      "WHERE event_id = ? ORDER BY id", (event_id,)).fetchall()
        return [MediaRow(*r) for r in rows]

    def deletable_media(self, kind: str, limit: int) -> list[MediaRow]:
        """The oldest files of ``kind`` whose event the hub has stored. A file whose event is not
        synced yet (or not even stored yet, as a clip still being written) is never offered."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT m.id, m.event_id, m.kind, m.path, m.bytes, m.created_at FROM media m "
                "JOIN events e ON e.id = m.event_id WHERE m.kind = ? AND e.synced_at IS NOT NULL "
                "ORDER BY m.created_at, m.id LIMIT ?", (kind, limit)).fetchall()
        return [MediaRow(*r) for r in rows]

    def forget_media(self, ids: list[int]) -> None:
        with self._lock, self._conn:
            self._conn.executemany("DELETE FROM media WHERE id = ?", [(i,) for i in ids])

    def is_synced(self, event_id: str) -> bool:
        with self._reading() as conn:
            row = conn.execute("SELECT synced_at FROM events WHERE id = ?", (event_id,)).fetchone()
        return row is not None and row[0] is not None

    def events(self, *, camera: str | None = None, type: str | None = None, since: float | None = None,
               until: float | None = None, before_seq: int | None = None, after_seq: int | None = None,
               limit: int = 50, exclude_type: str | None = None) -> list[dict[str, Any]]:
        """Events newest first (oldest first with ``after_seq``), filtered; ``data`` decoded."""
        filters = [("json_extract(data, '$.camera') = ?", camera or None), ("type = ?", type or None),
                   ("type != ?", exclude_type),
                   ("ts >= ?", since), ("ts <= ?", until), ("seq < ?", before_seq), ("seq > ?", after_seq)]
        where = [clause for clause, value in filters if value is not None]
        args = [value for _, value in filters if value is not None]
        order = "ASC" if after_seq is not None else "DESC"
        sql = ("SELECT id, seq, type, priority, ts, data, synced_at FROM events"
               + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY seq {order} LIMIT ?")
        with self._reading() as conn:
            cur = conn.execute(sql, [*args, limit])
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows

    def last_seq(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def media_path_known(self, path: str) -> bool:
        with self._reading() as conn:
            return conn.execute("SELECT 1 FROM media WHERE path = ?", (path,)).fetchone() is not None

    # --- LAN page users -------------------------------------------------------------------

    def put_user(self, name: str, password_hash: str, role: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO users (name, password_hash, role, created_at) VALUES (?,?,?,?)",
                               (name, password_hash, role, time.time()))

    def user(self, name: str) -> tuple[str, str] | None:
        """(password hash, role) of a LAN page user."""
        with self._reading() as conn:
            row = conn.execute("SELECT password_hash, role FROM users WHERE name = ?", (name,)).fetchone()
        return (row[0], row[1]) if row else None

    def user_count(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT count(*) FROM users").fetchone()[0]
