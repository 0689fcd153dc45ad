"""What every part of the hub's web layer shares: the engine, times, the current user (token or
session), the login and CSRF guards, and the caller's area. It imports no other web module."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, redirect, request, session, url_for

from common import csrf

from .. import alarms, auth, dispatch, registry, throttle
from ..access import scope_prefix
from .params import ApiError


def engine() -> sa.Engine:
    return current_app.extensions["xl"]["engine"]


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds") if ts else None


def change_ticket(change, *, refused: str = "not_allowed"):
    """Run a ticket change (a call into ``hub.alarms``) for the API: its refusals become JSON
    errors (404 not in your area, 403 role, 409 ``conflict`` for a race and ``refused`` for a
    change the ticket's state does not allow); then the command sender is told that the change
    may have written commands for a device."""
    try:
        ticket = change()
    except alarms.NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except alarms.Forbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    except dispatch.Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except dispatch.DispatchError as exc:
        raise ApiError(409, refused, str(exc)) from None
    current_app.extensions["xl"]["commands_due"]()
    return ticket


# --- auth helpers ------------------------------------------------------------------------------


def current_user() -> tuple[dict | None, bool]:
    """(user, by_session)"""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        keys = throttle.keys_for_token(request.remote_addr or "")
        wait = throttle.wait_s(engine(), keys)
        if wait > 0:
            raise ApiError(429, "too_many_attempts", f"too many wrong tokens from this address; try again in "
                                                     f"{math.ceil(wait)} s")
        user = auth.check_token(engine(), header[7:].strip())
        if user is None:
            throttle.failed(engine(), keys)
        return user, False
    return session.get("user"), True


def api_auth(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        user, _ = current_user()
        if user is None:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (see `xl-hub token create`)")
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
    """The session's CSRF token (checked for every state change by common.csrf)."""
    return csrf.token()


def user_prefix(user: dict) -> str | None:
    """The code prefix of the user's area (None: everything); see hub.access."""
    with engine().connect() as conn:
        return scope_prefix(conn, user.get("scope_code"))


# --- what the API and the pages show of domain rows ---------------------------------------


def device_json(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": d["id"], "kind": d["kind"], "model": d["model"], "name": d["name"], "grid_code": d["grid_code"],
        "location": {"latitude": d["latitude"], "longitude": d["longitude"], "address": d["address"]},
        "registered": bool(d["registered"]), "software": d["software"], "liveness": d["liveness"],
        "last_seen": iso(d["last_seen"]), "heartbeat": d["heartbeat"],
        # what the device itself says differently from the registry (the registry's values stand)
        "reported_mismatch": registry.mismatches(d),
    }


def event_json(e: dict[str, Any]) -> dict[str, Any]:
    return {"id": e["id"], "device_id": e["device_id"], "type": e["type"], "priority": e["priority"],
            "ts": iso(e["ts"]), "seq": e["seq"], "data": e["data"], "stored_at": iso(e["stored_at"])}
