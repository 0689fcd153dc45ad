"""Delivering notifications to the parties (五方联动): outgoing webhooks, and acknowledgements.

Dispatch writes a notification row per party (grid workers, the village monitor, the police
station, the town and county centres) when a ticket is routed, escalated or transferred. The
``Notifier`` thread turns each into one delivery per configured webhook that takes its party
(and area), and POSTs it: a JSON body signed with HMAC-SHA256 (``X-Xueliang-Signature:
sha256=<hex>``), an ``Idempotency-Key`` that stays the same on every retry, retried with
doubling backoff until a 2xx answer or until ``give_up_after_s``. The first delivery marks the
notification delivered. Staff of the party's area acknowledge a notification on the ticket page
or the API (``acknowledge``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from common.explained import N_, Explained

from .areas import AreaCode
from .sqlutil import insert_ignore
from .schema import devices, notifications, tickets, webhook_deliveries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: bytes
    parties: frozenset[str]
    scope_prefix: str | None = None
    timeout_s: float = 5.0

    def takes(self, party: str, ticket_area: str | None) -> bool:
        if party not in self.parties:
            return False
        return self.scope_prefix is None or (ticket_area or "").startswith(self.scope_prefix)


def webhooks_from_config(cfg) -> list[Webhook]:
    """The configured webhooks with their secrets read (``HubError``-worthy OSError propagates)."""
    out = []
    for w in cfg.notify.webhooks:
        secret = cfg.resolve(w.secret_file).read_text().strip().encode()
        if len(secret) < 16:
            raise ValueError(f"notify.webhooks {w.name}: the secret in {w.secret_file} must be at least 16 characters")
        out.append(Webhook(w.name, w.url, secret, frozenset(w.parties),
                           AreaCode.parse(w.scope).prefix if w.scope else None, w.timeout_s))
    return out


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def shown_on_console(engine: sa.Engine, ticket_ids: list[int], user_scope: str | None, *,
                     now: float | None = None) -> int:
    """The console channel: tickets were put in front of a user (the dashboard, its live stream).
    That delivers the notifications of the party the user belongs to: grid workers, the town or
    the county centre whose area is the user's own (a user of the whole county stands for the
    county centre; the police station is reached by its webhook, the village monitor by the
    pillar's LAN page). Returns rows marked."""
    if not ticket_ids:
        return 0
    now = time.time() if now is None else now
    console_parties = notifications.c.target.in_(("grid_workers", "town_centre", "county_centre"))
    mine = sa.and_(notifications.c.scope_code == user_scope, console_parties) if user_scope \
        else (notifications.c.target == "county_centre")
    with engine.connect() as conn:  # read first: a write would wait for the database's one writer
        ids = [r[0] for r in conn.execute(sa.select(notifications.c.id).where(notifications.c.ticket_id.in_(ticket_ids))
                                          .where(notifications.c.delivered_at.is_(None)).where(mine))]
    if not ids:
        return 0
    with engine.begin() as conn:
        return conn.execute(notifications.update().where(notifications.c.id.in_(ids))
                            .where(notifications.c.delivered_at.is_(None)).values(delivered_at=now)).rowcount


class NotYours(Explained):
    """The notification is not of the user's area (or does not exist on that ticket)."""


def acknowledge(engine: sa.Engine, notification_id: int, ticket_id: int, user: str, prefix: str | None, *,
                now: float | None = None) -> bool:
    """Staff of the party's area (``prefix``: the user's area code prefix, None for everything;
    a higher level may acknowledge for a lower one) acknowledged a notification. Returns False if
    it was acknowledged before (the first stands); raises ``NotYours``."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        row = conn.execute(sa.select(notifications.c.scope_code, tickets.c.grid_code, tickets.c.village_code)
                           .join(tickets, tickets.c.id == notifications.c.ticket_id)
                           .where(notifications.c.id == notification_id)
                           .where(notifications.c.ticket_id == ticket_id)).first()
        area = row and (row.scope_code or row.grid_code or row.village_code or "")
        if row is None or (prefix is not None and not area.startswith(prefix)):
            raise NotYours(N_("no notification %(notification)s of your area on ticket %(ticket)s"),
                           notification=notification_id, ticket=ticket_id)
        return conn.execute(notifications.update().where(notifications.c.id == notification_id)
                            .where(notifications.c.acked_at.is_(None))
                            .values(acked_at=now, acked_by=user)).rowcount == 1


class Notifier:
    def __init__(self, engine: sa.Engine, webhooks: list[Webhook], *, retry_min_s: float = 1.0,
                 retry_max_s: float = 300.0, give_up_after_s: float = 86400.0, poll_s: float = 0.2,
                 may_run: Callable[[], bool] = lambda: True):
        self.engine, self.webhooks = engine, {w.name: w for w in webhooks}
        self.retry_min_s, self.retry_max_s, self.give_up_after_s = retry_min_s, retry_max_s, give_up_after_s
        self.poll_s = poll_s
        self.may_run = may_run  # this node holds the webhooks' lease (one sender among several hub nodes)
        self.counters = {"delivered": 0, "failed_attempts": 0, "given_up": 0}
        self._cursor: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if not self.may_run():
                continue
            try:
                self.plan()
                self.send_due()
            except Exception:
                logger.exception("notification pass failed; trying again")
                self._stop.wait(1.0)

    def plan(self, now: float | None = None) -> int:
        """One delivery row per new notification and webhook that takes it. Returns rows made."""
        if not self.webhooks:
            return 0
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            if self._cursor is None:  # after a restart: whatever may still be unplanned
                self._cursor = (conn.execute(sa.select(sa.func.min(notifications.c.id))
                                             .where(notifications.c.created_at >= now - self.give_up_after_s)).scalar()
                                or (conn.execute(sa.select(sa.func.max(notifications.c.id))).scalar() or 0) + 1) - 1
            rows = conn.execute(sa.select(notifications.c.id, notifications.c.target, tickets.c.grid_code,
                                          tickets.c.village_code)
                                .join(tickets, tickets.c.id == notifications.c.ticket_id)
                                .where(notifications.c.id > self._cursor).order_by(notifications.c.id)
                                .limit(1000)).all()
            made = []
            for r in rows:
                for w in self.webhooks.values():
                    if w.takes(r.target, r.grid_code or r.village_code):
                        made.append({"notification_id": r.id, "webhook": w.name,
                                     "idempotency_key": f"xl-n{r.id}-{w.name}"[:64], "next_at": now})
            if made:
                conn.execute(insert_ignore(webhook_deliveries, conn.dialect.name), made)
        if rows:
            self._cursor = rows[-1].id
        return len(made)

    def _body(self, conn: sa.Connection, delivery) -> dict[str, Any]:
        n = conn.execute(sa.select(notifications).where(notifications.c.id == delivery.notification_id)).mappings().one()
        t = conn.execute(sa.select(tickets).where(tickets.c.id == n["ticket_id"])).mappings().one()
        d = conn.execute(sa.select(devices.c.name, devices.c.address, devices.c.latitude, devices.c.longitude)
                         .where(devices.c.id == t["device_id"])).mappings().first() if t["device_id"] else None
        return {"schema_version": 1, "idempotency_key": delivery.idempotency_key, "notification_id": n["id"],
                "party": n["target"], "scope_code": n["scope_code"], "reason": n["reason"],
                "notified_at": n["created_at"],
                "ticket": {k: t[k] for k in ("id", "category", "severity", "state", "level", "title", "event_id",
                                             "device_id", "grid_code", "village_code", "created_at", "accept_due")},
                "device": dict(d) if d else None}

    def send_due(self, now: float | None = None, limit: int = 100) -> int:
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            due = conn.execute(sa.select(webhook_deliveries).where(webhook_deliveries.c.next_at <= now)
                               .order_by(webhook_deliveries.c.next_at).limit(limit)).all()
            bodies = {d.id: self._body(conn, d) for d in due if d.webhook in self.webhooks}
        delivered = 0
        for d in due:
            w = self.webhooks.get(d.webhook)
            if w is None:  # the webhook was taken out of the config
                with self.engine.begin() as conn:
                    conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == d.id)
                                 .values(next_at=None, failed_at=now, last_error="webhook no longer configured"))
                continue
            error = self._post(w, d.idempotency_key, bodies[d.id])
            done = time.time()
            with self.engine.begin() as conn:
                if error is None:
                    conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == d.id)
                                 .values(next_at=None, delivered_at=done, attempts=d.attempts + 1, last_error=None))
                    conn.execute(notifications.update().where(notifications.c.id == d.notification_id)
                                 .where(notifications.c.delivered_at.is_(None)).values(delivered_at=done))
                    self.counters["delivered"] += 1
                    delivered += 1
                    continue
                self.counters["failed_attempts"] += 1
                attempts = d.attempts + 1
                notified = bodies[d.id]["notified_at"]
                if done - notified >= self.give_up_after_s:
                    values = {"next_at": None, "failed_at": done}
                    self.counters["given_up"] += 1
                    logger.error("webhook %s: gave up delivering %s: %s", w.name, d.idempotency_key, error)
                else:
                    values = {"next_at": done + min(self.retry_min_s * 2 ** (attempts - 1), self.retry_max_s)}
                    logger.warning("webhook %s: %s failed (%s); attempt %d, trying again", w.name, d.idempotency_key,
                                   error, attempts)
                conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == d.id)
                             .values(attempts=attempts, last_error=error[:200], **values))
        return delivered

    def _post(self, w: Webhook, key: str, body: dict[str, Any]) -> str | None:
        """None on a 2xx answer, else what went wrong."""
        data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
        req = urllib.request.Request(w.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": key, "X-Xueliang-Signature": sign(w.secret, data),
            "User-Agent": "xueliang-hub"})
        try:
            with urllib.request.urlopen(req, timeout=w.timeout_s) as resp:
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
