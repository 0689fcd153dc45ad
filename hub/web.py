"""Hub web UI and REST API (Flask application factory).

Pages use a session login with CSRF-protected forms; the API under /api/v1 takes a bearer
token (``xl-hub token create``) or the page's session. Errors from the API are one JSON
envelope: ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import time
from datetime import datetime, timezone
from functools import wraps
from typing import Any, Callable

import sqlalchemy as sa
from flask import (Blueprint, Flask, abort, current_app, g, jsonify, redirect, render_template, request, session,
                   url_for)
from werkzeug.exceptions import HTTPException

from common.redirects import safe_next
from protocols.messages import Command

from . import __version__, audit, auth, dispatch, eventlog, registry, throttle
from .access import scope_prefix
from .params import ApiError, IdConverter, arg_int, arg_text

MAX_PAGE = 500
DEVICE_ID = re.compile(r"[0-9]{20}")
EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

api = Blueprint("api", __name__, url_prefix="/api/v1")
pages = Blueprint("pages", __name__)


def create_app(engine: sa.Engine, *, secret_key: str, offline_after_s: float = 90.0,
               health: Callable[[], dict[str, Any]] | None = None,
               send_command: Callable[[str, Command], bool] | None = None) -> Flask:
    if not secret_key or len(secret_key) < 32:
        raise ValueError("the web secret key must be at least 32 characters")
    app = Flask(__name__)
    app.url_map.converters["id"] = IdConverter
    app.config.update(SECRET_KEY=secret_key, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.extensions["xl"] = {"engine": engine, "offline_after_s": offline_after_s,
                            "health": health or (lambda: {}), "send_command": send_command}
    from .web_pages import console
    from .web_tickets import tickets_api
    app.register_blueprint(api)
    app.register_blueprint(tickets_api)
    app.register_blueprint(pages)
    app.register_blueprint(console)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error={"code": exc.code, "message": exc.message}), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.path == "/healthz":
            return jsonify(error={"code": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code
        return exc

    @app.get("/healthz")
    def healthz():
        body: dict[str, Any] = {"version": __version__}
        try:
            with _engine().connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            body["database"] = "ok"
        except sa.exc.SQLAlchemyError as exc:
            body["database"] = f"error: {type(exc).__name__}"
        body.update(current_app.extensions["xl"]["health"]())
        ok = body["database"] == "ok" and body.get("broker_connected", True)
        body["status"] = "ok" if ok else "degraded"
        return jsonify(body), 200 if ok else 503

    return app


def _engine() -> sa.Engine:
    return current_app.extensions["xl"]["engine"]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds") if ts else None


# --- auth helpers ------------------------------------------------------------------------------


def _current_user() -> tuple[dict | None, bool]:
    """(user, by_session)"""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        keys = throttle.keys_for_token(request.remote_addr or "")
        wait = throttle.wait_s(_engine(), keys)
        if wait > 0:
            raise ApiError(429, "too_many_attempts", f"too many wrong tokens from this address; try again in "
                                                     f"{math.ceil(wait)} s")
        user = auth.check_token(_engine(), header[7:].strip())
        if user is None:
            throttle.failed(_engine(), keys)
        return user, False
    return session.get("user"), True


def api_auth(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        user, by_session = _current_user()
        if user is None:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (see `xl-hub token create`)")
        if by_session and request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                raise ApiError(400, "csrf", "X-CSRF-Token header missing or wrong")
        g.user = user
        return view(*args, **kwargs)
    return wrapper


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if session.get("user") is None:
            return redirect(url_for("pages.login", next=request.path))
        return view(*args, **kwargs)
    return wrapper


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, description="CSRF token missing or wrong; reload the page")


# --- API ---------------------------------------------------------------------------------------


def _device_json(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": d["id"], "kind": d["kind"], "model": d["model"], "name": d["name"], "grid_code": d["grid_code"],
        "location": {"latitude": d["latitude"], "longitude": d["longitude"], "address": d["address"]},
        "registered": bool(d["registered"]), "software": d["software"], "liveness": d["liveness"],
        "last_seen": _iso(d["last_seen"]), "heartbeat": d["heartbeat"],
        # what the device itself says differently from the registry (the registry's values stand)
        "reported_mismatch": registry.mismatches(d),
    }


def _event_json(e: dict[str, Any]) -> dict[str, Any]:
    return {"id": e["id"], "device_id": e["device_id"], "type": e["type"], "priority": e["priority"],
            "ts": _iso(e["ts"]), "seq": e["seq"], "data": e["data"], "stored_at": _iso(e["stored_at"])}


def _user_prefix(user: dict) -> str | None:
    with _engine().connect() as conn:
        return scope_prefix(conn, user.get("scope_code"))


@api.get("/devices")
@api_auth
def list_devices():
    items = registry.list_devices(_engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                  prefix=_user_prefix(g.user))
    return jsonify(items=[_device_json(d) for d in items])


@api.get("/devices/<device_id>")
@api_auth
def get_device(device_id: str):
    if not DEVICE_ID.fullmatch(device_id):
        raise ApiError(404, "not_found", f"no device {device_id[:40]!r}")
    items = registry.list_devices(_engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                  prefix=_user_prefix(g.user), device_id=device_id)
    if not items:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return jsonify(_device_json(items[0]))


def _parse_since(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ApiError(400, "bad_request", "since must be unix seconds or an ISO 8601 time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if not math.isfinite(number) or not 0 <= number <= 1e11:
        raise ApiError(400, "bad_request", "since must be unix seconds or an ISO 8601 time")
    return number


@api.get("/events")
@api_auth
def list_events():
    limit = arg_int("limit", 100, 1, MAX_PAGE)
    rows = eventlog.query_events(_engine(), device=arg_text("device", max_len=20),
                                 type=arg_text("type", max_len=32), since=_parse_since(arg_text("since")),
                                 before_id=arg_text("cursor", max_len=36, pattern=EVENT_ID), limit=limit,
                                 prefix=_user_prefix(g.user))
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return jsonify(items=[_event_json(e) for e in rows], next_cursor=next_cursor)


@api.post("/alarms/<alarm_id>/accept")
@api_auth
def accept_alarm(alarm_id: str):
    """Accept the ticket of an alarm (exactly one operator wins); the pillar's LED then shows
    "help coming"."""
    if g.user["role"] not in ("admin", "operator"):
        raise ApiError(403, "forbidden", "only operators and admins accept alarms")
    if not EVENT_ID.fullmatch(alarm_id):
        raise ApiError(404, "not_found", f"no alarm {alarm_id[:40]!r}")
    alarm = eventlog.get_event(_engine(), alarm_id, prefix=_user_prefix(g.user))
    if alarm is None or alarm["type"] != "alarm":
        raise ApiError(404, "not_found", f"no alarm {alarm_id}")
    ticket_id = dispatch.ticket_for_event(_engine(), alarm_id)
    if ticket_id is None:
        raise ApiError(409, "no_ticket", "the alarm's ticket is not open yet; try again")
    try:
        ticket = dispatch.act(_engine(), ticket_id, "accept", g.user["username"])
    except dispatch.DispatchError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    send = current_app.extensions["xl"]["send_command"]
    cmd = Command(command="help_coming", ts=time.time(), alarm_id=alarm_id)
    sent = send is not None and send(alarm["device_id"], cmd)
    return jsonify(alarm_id=alarm_id, device_id=alarm["device_id"], ticket_id=ticket["id"], state=ticket["state"],
                   accepted_by=g.user["username"], help_coming_sent=sent), 202


@api.get("/openapi.json")
def openapi():
    from .openapi import document
    return jsonify(document(__version__))


# --- pages -------------------------------------------------------------------------------------


@pages.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "")[:64]
        keys = throttle.keys_for_login(username, request.remote_addr or "")
        wait = throttle.wait_s(_engine(), keys)
        if wait > 0:
            audit.record(_engine(), username, "login_throttled", None, {"remote": request.remote_addr})
            error = (f"登录失败次数过多，请 {math.ceil(wait / 60)} 分钟后再试 / Too many failed logins; "
                     f"try again in {math.ceil(wait / 60)} min")
            return render_template("login.html", error=error, csrf_token=csrf_token()), 429
        user = auth.check_login(_engine(), username, request.form.get("password", ""))
        audit.record(_engine(), username, "login" if user else "login_failed", None,
                     {"remote": request.remote_addr})
        if user is None:
            throttle.failed(_engine(), keys)
            error = "用户名或密码错误 / Wrong user name or password"
        else:
            session.clear()
            session["user"] = user
            return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, csrf_token=csrf_token()), 401 if error else 200


@pages.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("pages.login"))
