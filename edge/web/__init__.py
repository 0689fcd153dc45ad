"""The device's LAN page for village monitors: live video, events, alarms, health.

``create_app`` is the Flask application factory (blueprints ``auth``, ``pages``, ``api``);
``LanPage`` serves it with waitress as one of the agent's components and runs the WebRTC
server on its own asyncio thread. Strings go through gettext (Flask-Babel); Chinese is the
default, English a switch away.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, request, session
from flask_babel import Babel

from common import csrf
from protocols.deviceconfig import EdgeConfig, WebSection

from ..alarms import AlarmBook
from ..store import Store

if TYPE_CHECKING:  # the LAN page reads these components; it does not build them
    from ..camera.vision import Vision
    from ..pillar.alarm import Pillar
    from ..sync import FpsMeters, SyncEngine
    from .encoder import MjpegSource
    from .live import LiveServer

logger = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")


class EventFeed:
    """Wakes the event streams of the page when the store takes an event."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = 0

    def notify(self) -> None:
        with self.cond:
            self.version += 1
            self.cond.notify_all()

    def wait(self, version: int, timeout: float) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.version != version, timeout)
            return self.version


@dataclass
class WebContext:
    cfg: EdgeConfig
    web: WebSection
    store: Store
    feed: EventFeed
    vision: "Vision | None" = None
    pillar: "Pillar | None" = None
    sync: "SyncEngine | None" = None
    meters: "FpsMeters | None" = None
    live: "LiveServer | None" = None  # made by LanPage from the cameras' latest pictures
    mjpeg: "dict[str, MjpegSource]" = field(default_factory=dict)
    alarms: AlarmBook | None = None  # the agent's; one is made on the store when not given

    def __post_init__(self) -> None:
        if self.alarms is None:
            self.alarms = AlarmBook(self.store, window_s=self.web.alarm_window_s)

    @property
    def cameras(self) -> list[str]:
        return [c.name for c in self.cfg.cameras]


def secret_key(folder: Path) -> bytes:
    """The session signing key, made at first start and kept (0600) next to the store."""
    path = folder / "web-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key


def select_locale() -> str:
    lang = request.cookies.get("lang")
    return lang if lang in LANGUAGES else "zh"


def create_app(ctx: WebContext, *, secret: bytes | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret or secret_key(ctx.store.path.parent), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", BABEL_DEFAULT_LOCALE="zh",
                      BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
                      MAX_CONTENT_LENGTH=256 * 1024)
    app.extensions["xl"] = ctx
    for u in ctx.web.users:  # users flashed with the config
        ctx.store.put_user(u.name, u.password_hash, u.role)
    Babel(app, locale_selector=select_locale)
    from . import api, auth, pages
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.protect(app, on_error=auth.csrf_refused)
    app.before_request(auth.guard)

    @app.context_processor
    def common() -> dict:
        return {"csrf_token": auth.csrf_token(), "user": session.get("user"), "role": session.get("role"),
                "lang": select_locale(), "device": ctx.cfg.device}

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    return app


class LanPage:
    """The agent component: waitress serving the app, plus the live video servers."""

    def __init__(self, ctx: WebContext):
        from common.webserver import WebServer

        from .encoder import MjpegSource
        from .live import make_live_server
        self.ctx = ctx
        w = ctx.web
        self._owns_live = False
        if ctx.vision is not None:
            if ctx.live is None:  # the agent makes it (the hub's viewers use it too); tests may not
                ctx.live, self._owns_live = make_live_server(ctx.cfg, ctx.vision), True
            ctx.mjpeg = {name: MjpegSource(cam.latest) for name, cam in ctx.vision.cameras.items()}
        ctx.store.listeners.append(ctx.feed.notify)
        self.app = create_app(ctx)
        self.server = WebServer(self.app, w.host, w.port, threads=w.threads, ident="xueliang-edge",
                                channel_timeout=30, name="lan-page")

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        if self._owns_live:
            self.ctx.live.start()
        self.server.start()
        if self.ctx.store.user_count() == 0:
            logger.warning("the LAN page has no users yet: add one with `xl-edge user add --config FILE NAME`")
        logger.info("LAN page on http://%s:%s/", self.ctx.web.host, self.port)

    def stop(self) -> None:
        self.server.stop()
        if self._owns_live:
            self.ctx.live.stop()

    def alive(self) -> bool:
        return self.server.alive() and (not self._owns_live or self.ctx.live.alive())
