"""Event clips at the hub: asked of the device, uploaded by it over HTTP in checked pieces, kept in
the media folder under a quota and for a number of days, served to viewers of the event's area.

A viewer asks for an event's clip (``request``): the hub writes a durable ``upload_clip`` command
in the same transaction as the clip's row, so the device gets it even if it is offline now. The
device uploads the MP4 with its own device credential in pieces of at most ``MAX_PIECE`` bytes,
each one a ``PUT`` with ``Content-Range: bytes START-END/TOTAL``; the hub appends a piece only at
the offset it has (a resend of a piece it already holds is answered with the offset, a gap is
refused), so an upload cut off by a crash, a reboot or the network goes on from where it stopped.
The last piece must bring the whole file to the SHA-256 the device announced
(``X-Content-SHA256``) and to an MP4 (an ``ftyp`` box); only then the clip is kept. A clip
larger than ``media.max_clip_mb`` is refused at its first piece. An alarm's clip is uploaded
without being asked (the device starts it; the hub accepts an upload for any event of that
device).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from protocols.ids import check_event_id

from . import commands
from .schema import clips, events

logger = logging.getLogger(__name__)

MAX_PIECE = 1024 * 1024
UNFINISHED_S = 2 * 86400.0  # an upload not finished two days after it was asked for (or began) is dropped


class ClipError(Exception):
    def __init__(self, status: int, code: str, message: str, received: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.received = status, code, message, received


def _event(conn: sa.Connection, event_id: str):
    return conn.execute(sa.select(events.c.id, events.c.device_id, events.c.type)
                        .where(events.c.id == event_id)).first()


def request(engine: sa.Engine, event_id: str, by: str, now: float | None = None) -> dict:
    """Ask the event's device for its clip (once; again after a refusal). The caller checked scope."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        ev = _event(conn, event_id)
        if ev is None:
            raise ClipError(404, "not_found", f"no event {event_id}")
        row = conn.execute(sa.select(clips).where(clips.c.event_id == event_id)).first()
        if row is not None and row.state in ("requested", "uploading", "complete"):
            return dict(row._mapping)
        values = dict(device_id=ev.device_id, state="requested", requested_at=now, requested_by=by,
                      bytes_total=None, bytes_received=0, error=None)
        if row is None:
            conn.execute(clips.insert().values(event_id=event_id, **values))
        else:
            conn.execute(clips.update().where(clips.c.event_id == event_id).values(**values))
        commands.enqueue(conn, ev.device_id, "upload_clip", event_id=event_id, by=by, now=now)
        return dict(conn.execute(sa.select(clips).where(clips.c.event_id == event_id)).first()._mapping)


def status(engine: sa.Engine, event_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(clips).where(clips.c.event_id == event_id)).first()
    return dict(row._mapping) if row else None


SWEEP_EVERY_S = 3600.0


class ClipStore:
    """The media folder: receives pieces, keeps clips; ``sweep`` (the hub runs it every
    ``SWEEP_EVERY_S``) applies retention and the quota."""

    def __init__(self, engine: sa.Engine, root: Path, *, max_clip_bytes: int, quota_bytes: int,
                 retention_days: float):
        self.engine, self.root = engine, root
        self.max_clip_bytes, self.quota_bytes, self.retention_days = max_clip_bytes, quota_bytes, retention_days
        self.counters = {"pieces": 0, "clips": 0, "refused": 0, "swept": 0}
        self._lock = threading.Lock()  # one writer of the media folder at a time

    def path(self, event_id: str) -> Path:
        check_event_id(event_id)
        return self.root / event_id[:8] / f"{event_id}.mp4"

    def offset(self, device_id: str, event_id: str) -> int:
        """How much of the event's clip the hub holds (where the device goes on)."""
        with self.engine.connect() as conn:
            ev = _event(conn, event_id)
            if ev is None or ev.device_id != device_id:
                raise ClipError(404, "not_found", f"no event {event_id} of device {device_id}")
            row = conn.execute(sa.select(clips.c.bytes_received).where(clips.c.event_id == event_id)).first()
        return row.bytes_received if row else 0

    def receive(self, device_id: str, event_id: str, start: int, end: int, total: int, sha256: str,
                body: bytes, now: float | None = None) -> dict:
        """One piece ``[start, end]`` (inclusive) of a clip of ``total`` bytes; the row after it."""
        now = time.time() if now is None else now
        if total > self.max_clip_bytes:
            self._refuse(device_id, event_id, f"the clip is {total} bytes, larger than media.max_clip_mb "
                                              f"({self.max_clip_bytes / (1 << 20):g} MB)", now)
            raise ClipError(413, "too_large", f"clip of {total} bytes refused: the hub keeps clips of at most "
                                              f"{self.max_clip_bytes} bytes (media.max_clip_mb)")
        if not (0 <= start <= end < total and end - start + 1 == len(body) and len(body) <= MAX_PIECE):
            raise ClipError(400, "bad_range", f"Content-Range bytes {start}-{end}/{total} does not fit a body "
                                              f"of {len(body)} bytes (pieces of at most {MAX_PIECE})")
        with self._lock:
            with self.engine.begin() as conn:
                ev = _event(conn, event_id)
                if ev is None or ev.device_id != device_id:
                    raise ClipError(404, "not_found", f"no event {event_id} of device {device_id}")
                row = conn.execute(sa.select(clips).where(clips.c.event_id == event_id)).first()
                if row is None:  # the device sends an alarm's clip without being asked
                    conn.execute(clips.insert().values(event_id=event_id, device_id=device_id, state="uploading",
                                                       requested_at=now, requested_by=f"{device_id}@device",
                                                       bytes_received=0))
                    row = conn.execute(sa.select(clips).where(clips.c.event_id == event_id)).first()
                if row.state == "complete":
                    return dict(row._mapping)
                same_file = row.bytes_total in (None, total) and row.sha256 in (None, sha256)
            part = self.path(event_id).with_suffix(".part")
            part.parent.mkdir(parents=True, exist_ok=True)
            # the pieces on disk are what the hub holds (written and fsynced before the row says so)
            held = part.stat().st_size if same_file and part.exists() else 0
            if start > held:
                raise ClipError(409, "gap", f"the hub holds {held} bytes of this clip; send from there", held)
            if end < held:  # a resend of a piece already held
                return self._row(event_id)
            with open(part, "r+b" if part.exists() and start > 0 else "wb") as fh:
                fh.truncate(start)
                fh.seek(start)
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            received = end + 1
            self.counters["pieces"] += 1
            values = dict(state="uploading", bytes_total=total, bytes_received=received, sha256=sha256, error=None)
            if received == total:
                problem = self._check(part, sha256)
                if problem:
                    part.unlink(missing_ok=True)
                    self._refuse(device_id, event_id, problem, now)
                    raise ClipError(422, "bad_clip", problem, 0)
                final = self.path(event_id)
                os.replace(part, final)
                values.update(state="complete", completed_at=now, path=str(final.relative_to(self.root)))
                self.counters["clips"] += 1
            with self.engine.begin() as conn:
                conn.execute(clips.update().where(clips.c.event_id == event_id).values(**values))
        if received == total:
            logger.info("device=%s clip of %s complete (%d bytes)", device_id, event_id, total)
            self.sweep(quota_only=True)
        return self._row(event_id)

    def _row(self, event_id: str) -> dict:
        return status(self.engine, event_id) or {}

    @staticmethod
    def _check(part: Path, sha256: str) -> str | None:
        digest = hashlib.sha256()
        with open(part, "rb") as fh:
            head = fh.read(12)
            digest.update(head)
            for block in iter(lambda: fh.read(1024 * 1024), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            return "the uploaded clip does not match its SHA-256 (X-Content-SHA256)"
        if len(head) < 12 or head[4:8] != b"ftyp":
            return "the uploaded file is not an MP4 (no ftyp box)"
        return None

    def _refuse(self, device_id: str, event_id: str, reason: str, now: float) -> None:
        self.counters["refused"] += 1
        logger.warning("device=%s clip of %s refused: %s", device_id, event_id, reason)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(clips.c.event_id).where(clips.c.event_id == event_id)).first()
            values = dict(state="refused", error=reason[:200], bytes_received=0)
            if row is None:
                conn.execute(clips.insert().values(event_id=event_id, device_id=device_id, requested_at=now,
                                                   requested_by=f"{device_id}@device", **values))
            else:
                conn.execute(clips.update().where(clips.c.event_id == event_id).values(**values))

    def sweep(self, now: float | None = None, quota_only: bool = False) -> int:
        """Delete clips older than the retention, then the oldest until the folder fits its quota;
        and the pieces of uploads nobody finished in ``UNFINISHED_S``."""
        now = time.time() if now is None else now
        gone: list[str] = []
        with self._lock, self.engine.begin() as conn:
            if not quota_only:
                stale = conn.execute(sa.select(clips.c.event_id).where(clips.c.state.in_(("requested", "uploading")))
                                     .where(clips.c.requested_at < now - UNFINISHED_S)).scalars().all()
                for event_id in stale:
                    self.path(event_id).with_suffix(".part").unlink(missing_ok=True)
                if stale:
                    conn.execute(clips.update().where(clips.c.event_id.in_(stale))
                                 .values(state="expired", bytes_received=0, error="not finished in two days"))
            done = conn.execute(sa.select(clips.c.event_id, clips.c.path, clips.c.bytes_total, clips.c.completed_at)
                                .where(clips.c.state == "complete").order_by(clips.c.completed_at)).all()
            total = sum(r.bytes_total or 0 for r in done)
            for r in done:
                old = not quota_only and r.completed_at < now - self.retention_days * 86400
                if old or total > self.quota_bytes:
                    (self.root / r.path).unlink(missing_ok=True)
                    total -= r.bytes_total or 0
                    gone.append(r.event_id)
            if gone:
                conn.execute(clips.update().where(clips.c.event_id.in_(gone))
                             .values(state="expired", path=None, error="removed by the media quota or retention"))
        self.counters["swept"] += len(gone)
        return len(gone)


def device_of_event(engine: sa.Engine, event_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(events.c.device_id).where(events.c.id == event_id)).scalar()
