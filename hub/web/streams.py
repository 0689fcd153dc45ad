"""Live page streams (Server-Sent Events) without a thread or a database poll per page.

One ``Fanout`` thread reads the database once a second for the whole hub: new tickets, and
whether any ticket changed or a device's liveness moved. It sends what each open page may see
(its user's area) in its user's language: ``event: ticket`` for a new ticket, ``event: counts``
(tickets by state, devices by liveness) when they changed. Pages are asyncio tasks in the web
server's event loop (``stream_app``, an ASGI app in front of the Flask app), so fifty open
dashboards cost fifty sockets and queues, not fifty of the web server's threads."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale

from .. import notify, registry, stats
from ..access import device_filter, scope_prefix, ticket_filter
from ..names import Names
from ..schema import devices, meta, ticket_transitions, tickets
from .i18n import label, local_time, ticket_title

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
QUEUE_MAX = 256  # a page that does not read this many messages is dropped (it reconnects)


@dataclass(eq=False)
class Subscriber:
    prefix: str | None
    scope_code: str | None
    lang: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    counts: str = ""  # the last counts message it was sent

    def put(self, message: str) -> None:
        """From the fan-out thread."""
        def put_now():
            if self.queue.full():
                self.queue.put_nowait(None)  # ends the stream; the browser reconnects with Last-Event-ID
            else:
                self.queue.put_nowait(message)
        self.loop.call_soon_threadsafe(put_now)

    def put_end(self) -> None:
        def end_now():
            while self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
        self.loop.call_soon_threadsafe(end_now)


class Fanout:
    def __init__(self, app: Flask, engine: sa.Engine, *, offline_after_s: float, interval_s: float = 1.0):
        self.app, self.engine, self.offline_after_s, self.interval_s = app, engine, offline_after_s, interval_s
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="page-streams", daemon=True)
        self._last_ticket = 0
        self._last_change: tuple = ()
        self.counters = {"reads": 0, "messages": 0, "subscribers": 0}

    # --- the component --------------------------------------------------------------------
    def start(self) -> None:
        with self.engine.connect() as conn:
            self._last_ticket = conn.execute(sa.select(sa.func.max(tickets.c.id))).scalar() or 0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.end_streams()

    def end_streams(self) -> None:
        """End every open page's stream (the web server is stopping; browsers reconnect)."""
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            s.put_end()

    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- pages ------------------------------------------------------------------------------
    def subscribe(self, sub: Subscriber, after_id: int) -> None:
        with self._lock:
            self._subs.add(sub)
            self.counters["subscribers"] = len(self._subs)
        if after_id and after_id < self._last_ticket:  # a reconnecting page: what it missed, once
            threading.Thread(target=self._catch_up, args=(sub, after_id), daemon=True).start()

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)
            self.counters["subscribers"] = len(self._subs)

    def prefix_of(self, scope_code: str | None) -> str | None:
        with self.engine.connect() as conn:
            return scope_prefix(conn, scope_code)

    # --- the one reader -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                subs = list(self._subs)
            if not subs:
                continue
            try:
                self._tick(subs)
            except Exception:  # the database away for a moment: next second again
                logger.exception("page streams: reading the database failed")

    def _tick(self, subs: list[Subscriber]) -> None:
        self.counters["reads"] += 1
        with self.engine.connect() as conn:
            new = [dict(r) for r in conn.execute(sa.select(tickets).where(tickets.c.id > self._last_ticket)
                                                 .order_by(tickets.c.id).limit(500)).mappings()]
            change = (conn.execute(sa.select(sa.func.max(ticket_transitions.c.id))).scalar(),
                      conn.execute(sa.select(sa.func.count()).select_from(devices)
                                   .where(devices.c.last_seen > time.time() - self.offline_after_s)).scalar(),
                      conn.execute(sa.select(sa.func.max(devices.c.status_ts))).scalar())
        if new:
            self._last_ticket = new[-1]["id"]
            self._send_tickets(subs, new)
        if change != self._last_change or new:
            self._last_change = change
            self._send_counts(subs)

    def _send_tickets(self, subs: list[Subscriber], rows: list[dict[str, Any]]) -> None:
        names = Names(self.engine).want_devices(r["device_id"] for r in rows)
        shown: dict[str | None, list[int]] = {}
        for row in rows:
            payload = {lang: self._ticket_message(row, names, lang) for lang in {s.lang for s in subs}}
            for s in subs:
                if _inside(row, s.prefix):
                    s.put(payload[s.lang])
                    self.counters["messages"] += 1
                    if row["severity"] == "urgent":
                        shown.setdefault(s.scope_code, []).append(row["id"])
        for scope_code, ids in shown.items():  # the console channel of the five parties
            notify.shown_on_console(self.engine, sorted(set(ids)), scope_code)

    def _ticket_message(self, t: dict[str, Any], names: Names, lang: str) -> str:
        with self.app.app_context(), force_locale(lang):
            data = {"id": t["id"], "title": ticket_title(t, names), "severity": t["severity"],
                    "state": label("state", t["state"]), "device": names.device(t["device_id"]),
                    "device_id": t["device_id"], "grid_code": t["grid_code"],
                    "place": " › ".join(n for _, n in names.path(t["grid_code"] or t["village_code"])),
                    "created_at": local_time(t["created_at"])}
        return f"event: ticket\nid: {t['id']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    def _send_counts(self, subs: list[Subscriber]) -> None:
        by_prefix: dict[str | None, str] = {}
        for s in subs:
            if s.prefix not in by_prefix:
                by_prefix[s.prefix] = "event: counts\ndata: " + json.dumps(self.counts(s.prefix)) + "\n\n"
            if by_prefix[s.prefix] != s.counts:
                s.counts = by_prefix[s.prefix]
                s.put(s.counts)
                self.counters["messages"] += 1

    def counts(self, prefix: str | None) -> dict[str, Any]:
        return counts(self.engine, prefix, self.offline_after_s)

    def _catch_up(self, sub: Subscriber, after_id: int) -> None:
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(tickets).where(tickets.c.id > after_id)
                                                  .where(tickets.c.id <= self._last_ticket)
                                                  .where(ticket_filter(sub.prefix)).order_by(tickets.c.id)
                                                  .limit(200)).mappings()]
        names = Names(self.engine).want_devices(r["device_id"] for r in rows)
        for row in rows:
            sub.put(self._ticket_message(row, names, sub.lang))


def counts(engine: sa.Engine, prefix: str | None, offline_after_s: float) -> dict[str, Any]:
    """Tickets by state and devices by liveness in the area (the dashboard's cards)."""
    now = time.time()
    with engine.connect() as conn:
        started = conn.execute(sa.select(meta.c.value).where(meta.c.key == registry.INGEST_STARTED_KEY)).scalar()
        rows = conn.execute(sa.select(devices.c.status, devices.c.last_seen)
                            .where(device_filter(prefix))).mappings().all()
    liveness = {"online": 0, "offline": 0, "unknown": 0}
    for r in rows:
        liveness[registry.liveness(r, now=now, ingest_started=float(started) if started else None,
                                   offline_after_s=offline_after_s)] += 1
    return {"states": stats.counts_by_state(engine, prefix), "liveness": liveness}


def _inside(t: dict[str, Any], prefix: str | None) -> bool:
    if prefix is None:
        return True
    code = t["grid_code"] or t["village_code"] or ""
    return code.startswith(prefix)


def stream_app(flask_app: Flask, wsgi_asgi, fanout: Fanout, stream_paths: tuple[str, ...] = ("/stream",)):
    """An ASGI app: the page streams here, everything else to the Flask app (``wsgi_asgi``)."""
    serializer = flask_app.session_interface.get_signing_serializer(flask_app)
    cookie_name = flask_app.config.get("SESSION_COOKIE_NAME", "session")

    def session_of(scope) -> dict:
        raw = b"; ".join(v for k, v in scope.get("headers", []) if k == b"cookie").decode("latin-1")
        jar = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return {}
        value = jar.get(cookie_name)
        if value is None or serializer is None:
            return {}
        try:
            return serializer.loads(value.value, max_age=int(flask_app.permanent_session_lifetime.total_seconds()))
        except Exception:
            return {}

    async def respond(send, status: int, body: bytes, headers=()) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def stream(scope, receive, send) -> None:
        sess = session_of(scope)
        user = sess.get("user")
        if not isinstance(user, dict):
            await respond(send, 302, b"log in", [(b"location", b"/login?next=/")])
            return
        query = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode("latin-1").split("&") if "=" in p)
        after = query.get("after", "0")
        headers = {k: v for k, v in scope.get("headers", [])}
        after = headers.get(b"last-event-id", after.encode()).decode("latin-1")
        if not after.isdigit() or len(after) > 10:
            await respond(send, 400, b"after: a ticket id")
            return
        loop = asyncio.get_running_loop()
        prefix = await loop.run_in_executor(None, fanout.prefix_of, user.get("scope_code"))
        lang = sess.get("lang") if sess.get("lang") in ("zh", "en") else "zh"
        sub = Subscriber(prefix, user.get("scope_code"), lang, loop)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                                (b"x-accel-buffering", b"no")]})
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        fanout.subscribe(sub, int(after))
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while True:
                getter = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({getter, disconnected}, timeout=KEEPALIVE_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if disconnected in done:
                    getter.cancel()
                    return
                if getter not in done:
                    getter.cancel()
                    message = ": keep-alive\n\n"
                else:
                    message = getter.result()
                    if message is None:
                        break
                await send({"type": "http.response.body", "body": message.encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (OSError, asyncio.CancelledError):  # the browser went, or the server is stopping
            return
        finally:
            fanout.unsubscribe(sub)
            disconnected.cancel()

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] in stream_paths and scope["method"] == "GET":
            await stream(scope, receive, send)
        else:
            await wsgi_asgi(scope, receive, send)
    return app


async def _wait_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
