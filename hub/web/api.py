"""REST API: devices, events, alarms and the OpenAPI document (tickets are in ``tickets``)."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from common.times import parse_time
from protocols.ids import DEVICE_ID_RE, EVENT_ID_RE

from .. import __version__, alarms, eventlog, registry
from .base import api_auth, change_ticket, device_json, engine, event_json, user_prefix
from .params import ApiError, arg_int, arg_text

MAX_PAGE = 500

api = Blueprint("api", __name__, url_prefix="/api/v1")


@api.get("/devices")
@api_auth
def list_devices():
    items = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                  prefix=user_prefix(g.user))
    return jsonify(items=[device_json(d) for d in items])


@api.get("/devices/<device_id>")
@api_auth
def get_device(device_id: str):
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ApiError(404, "not_found", f"no device {device_id[:40]!r}")
    items = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                  prefix=user_prefix(g.user), device_id=device_id)
    if not items:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return jsonify(device_json(items[0]))


def _parse_since(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"since: {exc}") from None


@api.get("/events")
@api_auth
def list_events():
    limit = arg_int("limit", 100, 1, MAX_PAGE)
    rows = eventlog.query_events(engine(), device=arg_text("device", max_len=20),
                                 type=arg_text("type", max_len=32), since=_parse_since(arg_text("since")),
                                 before_id=arg_text("cursor", max_len=36, pattern=EVENT_ID_RE), limit=limit,
                                 prefix=user_prefix(g.user))
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return jsonify(items=[event_json(e) for e in rows], next_cursor=next_cursor)


@api.post("/alarms/<alarm_id>/accept")
@api_auth
def accept_alarm(alarm_id: str):
    """Accept the ticket of an alarm (exactly one operator wins); the pillar's LED then shows
    "help coming" (a durable command, sent until the pillar acks it)."""
    if not EVENT_ID_RE.fullmatch(alarm_id):
        raise ApiError(404, "not_found", f"no alarm {alarm_id[:40]!r}")
    # someone accepted it first: a conflict, whatever the ticket's state now
    ticket = change_ticket(lambda: alarms.accept(engine(), alarm_id, g.user, scope=user_prefix(g.user)),
                           refused="conflict")
    return jsonify(alarm_id=alarm_id, device_id=ticket["device_id"], ticket_id=ticket["id"], state=ticket["state"],
                   accepted_by=g.user["username"], help_coming_queued=True), 202


@api.get("/openapi.json")
def openapi():
    from .openapi import document
    return jsonify(document(__version__))
