"""Live video from devices at the hub (视频巡查): sessions, signalling and the viewing record.

A browser asks for a session (``start``): the caller's scope was checked by the web layer, the
device's viewer limit here; the browser gets the session id and its TURN credentials. It then
posts its offer (``offer``): the hub passes it to the device on ``xl/v1/dev/<id>/live`` and waits
for the device's ``live_answer``. Media go device → coturn → browser; nothing connects to the
device. Every session is a row of ``view_sessions`` (who, which camera, from which page, why,
from when to when: 视频调阅登记). The browser keeps its session alive every few seconds; a
session not kept alive for ``keepalive_timeout_s`` is ended at its last keep-alive (``lapsed``) and the
device told to close it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from protocols import ProtocolError
from protocols.live import LiveRequest, decode_answer, encode_request

from . import turn
from .config import LiveSection
from .schema import view_sessions

logger = logging.getLogger(__name__)

PAGES = ("device", "ticket", "wall", "map", "api")
OPEN_OUTCOMES = ("waiting", "live")


class LiveError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LiveSessions:
    """Owns the sessions of this hub process; ``publish(device_id, payload) -> bool`` sends on
    the device's live topic, ``on_answer`` takes what devices publish on ``live_answer``."""

    def __init__(self, engine: sa.Engine, cfg: LiveSection, turn_secret: str | None,
                 publish: Callable[[str, bytes], bool]):
        self.engine, self.cfg, self.turn_secret, self.publish = engine, cfg, turn_secret, publish
        self._waiters: dict[str, tuple[str, threading.Event, list]] = {}
        self._lock = threading.Lock()
        self.counters = {"started": 0, "answered": 0, "refused": 0, "timeouts": 0, "bad_answers": 0, "lapsed": 0}

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.turn_urls) and self.turn_secret is not None

    @property
    def sweep_every_s(self) -> float:
        return min(5.0, self.cfg.keepalive_timeout_s / 3)

    def sweep(self, now: float | None = None) -> int:
        """End the sessions nobody kept alive; tell their devices (the hub runs it every
        ``sweep_every_s``)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(view_sessions.c.id, view_sessions.c.device_id, view_sessions.c.last_seen_at)
                                .where(view_sessions.c.ended_at.is_(None))
                                .where(view_sessions.c.last_seen_at < now - self.cfg.keepalive_timeout_s)).all()
            for r in rows:
                conn.execute(view_sessions.update().where(view_sessions.c.id == r.id)
                             .values(ended_at=r.last_seen_at, outcome="lapsed"))
        for r in rows:
            self._send_close(r.device_id, r.id)
        self.counters["lapsed"] += len(rows)
        return len(rows)

    # --- sessions -------------------------------------------------------------------------------

    def watching(self, conn: sa.Connection, device_id: str, now: float, *, talk: bool = False) -> list[str]:
        """Who watches the device now (open sessions kept alive); with ``talk``, who talks to it."""
        q = (sa.select(view_sessions.c.username).where(view_sessions.c.device_id == device_id)
             .where(view_sessions.c.ended_at.is_(None))
             .where(view_sessions.c.last_seen_at >= now - self.cfg.keepalive_timeout_s)
             .order_by(view_sessions.c.started_at))
        if talk:
            q = q.where(view_sessions.c.talk.is_(True))
        return [r.username for r in conn.execute(q)]

    def start_session(self, user: dict, device_id: str, camera: str, *, page: str, quality: str = "main",
                      reason: str | None = None, ticket_id: int | None = None, talk: bool = False) -> dict[str, Any]:
        if not self.enabled:
            raise LiveError(503, "live_unavailable", "live video needs the hub config's live.turn_urls (coturn)")
        if self.cfg.require_reason and not (reason or "").strip():
            raise LiveError(400, "reason_required", "give a reason for this view (视频调阅事由)")
        now = time.time()
        session = uuid.uuid4().hex
        with self.engine.begin() as conn:
            watching = self.watching(conn, device_id, now)
            if len(watching) >= self.cfg.viewers_per_device:
                raise LiveError(409, "viewers_limit", f"{len(watching)} viewer(s) already watch this device, its "
                                                      f"limit; watching: {', '.join(watching)}")
            talking = self.watching(conn, device_id, now, talk=True) if talk else []
            talk = talk and not talking  # a pillar has one speaker: one operator talks at a time
            conn.execute(view_sessions.insert().values(
                id=session, user_id=user["id"], username=user["username"], device_id=device_id, camera=camera,
                page=page, quality=quality, talk=talk, reason=reason, ticket_id=ticket_id, started_at=now,
                last_seen_at=now, outcome="waiting"))
        self.counters["started"] += 1
        servers = turn.ice_servers(self.cfg.turn_urls, self.turn_secret, user["username"], self.cfg.credential_ttl_s)
        return {"session": session, "device_id": device_id, "camera": camera, "talk": talk, "talking": talking,
                "ice_servers": [s.as_dict() for s in servers], "ice_transport_policy": "relay",
                "keepalive_s": self.cfg.keepalive_timeout_s / 3}

    def _own(self, conn: sa.Connection, user: dict, session: str):
        return own_session(conn, user, session)

    def offer(self, user: dict, session: str, sdp: str) -> str:
        """Pass the browser's offer to the device; the device's answer SDP, or a LiveError."""
        with self.engine.connect() as conn:
            row = self._own(conn, user, session)
        if row.ended_at is not None or row.outcome != "waiting":
            raise LiveError(409, "session_used", "this session has ended or has its answer; start a new one")
        # the device: the relay's STUN side (its NAT's address) and its own TURN allocation
        servers = turn.stun_servers(self.cfg.turn_urls) + turn.ice_servers(
            self.cfg.turn_urls, self.turn_secret, f"dev-{row.device_id}", self.cfg.credential_ttl_s)
        try:
            payload = encode_request(LiveRequest(op="offer", session=session, ts=time.time(), camera=row.camera,
                                                 sdp=sdp, quality=row.quality, audio=row.talk, ice_servers=servers))
        except ProtocolError as exc:
            raise LiveError(400, "bad_request", f"sdp: {exc.reason}") from None
        event = threading.Event()
        box: list = []
        with self._lock:
            self._waiters[session] = (row.device_id, event, box)
        try:
            if not self.publish(row.device_id, payload):
                self._finish(session, "failed", "the hub is not connected to the broker")
                raise LiveError(503, "broker_unavailable", "the hub is not connected to the broker; try again")
            if not event.wait(self.cfg.answer_timeout_s):
                self.counters["timeouts"] += 1
                self._finish(session, "failed", "no answer from the device")
                raise LiveError(504, "device_timeout", f"the device did not answer within "
                                                       f"{self.cfg.answer_timeout_s:.0f} s (offline?)")
        finally:
            with self._lock:
                self._waiters.pop(session, None)
        answer = box[0]
        if answer.error is not None:
            self.counters["refused"] += 1
            self._finish(session, "refused", answer.error)
            raise LiveError(409, "device_refused", f"the device refused: {answer.error}")
        self.counters["answered"] += 1
        with self.engine.begin() as conn:
            conn.execute(view_sessions.update().where(view_sessions.c.id == session)
                         .values(outcome="live", last_seen_at=time.time()))
        return answer.sdp

    def keepalive(self, user: dict, session: str) -> None:
        with self.engine.begin() as conn:
            row = self._own(conn, user, session)
            if row.ended_at is not None:
                raise LiveError(409, "session_ended", "this session has ended")
            conn.execute(view_sessions.update().where(view_sessions.c.id == session)
                         .values(last_seen_at=time.time()))

    def close(self, user: dict, session: str) -> None:
        with self.engine.connect() as conn:
            row = self._own(conn, user, session)
        if row.ended_at is None:
            self._finish(session, "closed", None)
            self._send_close(row.device_id, session)

    def _finish(self, session: str, outcome: str, detail: str | None) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(view_sessions.update().where(view_sessions.c.id == session)
                         .where(view_sessions.c.ended_at.is_(None))
                         .values(ended_at=now, last_seen_at=now, outcome=outcome, detail=(detail or None) and detail[:200]))

    def _send_close(self, device_id: str, session: str) -> None:
        self.publish(device_id, encode_request(LiveRequest(op="close", session=session, ts=time.time())))

    # --- from the broker (paho's thread) ----------------------------------------------------

    def on_answer(self, device_id: str, payload: bytes) -> None:
        try:
            answer = decode_answer(payload)
        except ProtocolError as exc:
            self.counters["bad_answers"] += 1
            logger.warning("device=%s bad live answer: %s", device_id, exc.reason)
            return
        with self._lock:
            waiter = self._waiters.get(answer.session)
        if waiter is None or waiter[0] != device_id:  # late, or another device's session
            if waiter is not None:
                self.counters["bad_answers"] += 1
                logger.warning("device=%s answered a session of device %s", device_id, waiter[0])
            return
        waiter[2].append(answer)
        waiter[1].set()


def own_session(conn: sa.Connection, user: dict, session: str):
    """The user's session; another user's is a 404 exactly like a missing one."""
    row = conn.execute(sa.select(view_sessions).where(view_sessions.c.id == session)).first()
    if row is None or row.user_id != user["id"]:
        raise LiveError(404, "not_found", "no such live session")
    return row


def sessions_list(engine: sa.Engine, *, since: float | None = None, device_id: str | None = None,
                  limit: int = 500) -> list[dict[str, Any]]:
    """The viewing record, newest first (for admins)."""
    q = sa.select(view_sessions).order_by(view_sessions.c.started_at.desc()).limit(limit)
    if since is not None:
        q = q.where(view_sessions.c.started_at >= since)
    if device_id is not None:
        q = q.where(view_sessions.c.device_id == device_id)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:
        end = r["ended_at"] if r["ended_at"] is not None else r["last_seen_at"]
        r["duration_s"] = round(max(0.0, end - r["started_at"]), 1)
    return rows
