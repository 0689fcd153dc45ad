"""Ticket API for county, town and village staff and for grid workers' phones, scoped to the
caller's area. A ticket outside the caller's scope is a 404, exactly like a missing one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from .. import alarms, audit, dispatch, notify, readmodel
from ..access import may
from .base import api_auth, change_ticket, engine, iso, user_prefix
from .i18n import in_chinese, label
from .params import INT32_MAX, ApiError, arg_choice, arg_int, arg_text, bad, body, field_id, field_text

tickets_api = Blueprint("tickets_api", __name__, url_prefix="/api/v1/tickets")


def _prefix() -> str | None:
    return user_prefix(g.user)


def _ticket_json(t: dict[str, Any]) -> dict[str, Any]:
    out = {k: t[k] for k in ("id", "category", "severity", "state", "level", "title", "description", "source",
                             "event_id", "device_id", "grid_code", "village_code", "assignee", "merged_into",
                             "urge_count", "supervise_count")}
    out["state_zh"] = in_chinese(label, "state", t["state"])
    for k in ("created_at", "accept_due", "resolve_due", "accepted_at", "resolved_at", "closed_at"):
        out[k] = iso(t[k])
    return out


def _photo(ticket_id: int, purpose: str) -> int | None:
    upload = request.files.get("photo")
    if upload is None:
        return None
    data = upload.read(dispatch.MAX_PHOTO_BYTES + 1)
    try:
        return dispatch.add_photo(engine(), ticket_id, g.user["username"], data, purpose)
    except dispatch.DispatchError as exc:
        raise ApiError(400, "bad_photo", str(exc)) from None


def _visible(ticket_id: int) -> dict[str, Any]:
    row = readmodel.ticket(engine(), _prefix(), ticket_id)
    if row is None:
        raise ApiError(404, "not_found", f"no ticket {ticket_id}")
    return row


@tickets_api.get("")
@api_auth
def list_tickets():
    filters = {name: arg_text(name, max_len=32) for name in ("state", "level", "category", "severity", "grid_code")}
    mine = g.user["username"] if arg_choice("mine", ("0", "1")) == "1" else None
    limit = arg_int("limit", 50, 1, 500)
    rows = readmodel.tickets_page(engine(), _prefix(), filters=filters, mine=mine,
                                  before_id=arg_int("cursor", 0, 1, INT32_MAX) or None, limit=limit)
    return jsonify(items=[_ticket_json(t) for t in rows],
                   next_cursor=rows[-1]["id"] if len(rows) == limit else None)


@tickets_api.get("/<id:ticket_id>")
@api_auth
def get_ticket(ticket_id: int):
    t = _visible(ticket_id)
    timeline = readmodel.timeline(engine(), ticket_id)
    photos = readmodel.photos(engine(), ticket_id)
    audit.record(engine(), g.user["username"], "view_ticket", str(ticket_id))
    parties = [{"id": p["id"], "party": p["target"], "scope_code": p["scope_code"], "reason": p["reason"],
                "notified_at": iso(p["created_at"]), "delivered_at": iso(p["delivered_at"]),
                "acked_at": iso(p["acked_at"]), "acked_by": p["acked_by"],
                "webhooks": [{"webhook": d["webhook"], "attempts": d["attempts"],
                              "delivered_at": iso(d["delivered_at"]), "failed_at": iso(d["failed_at"]),
                              "last_error": d["last_error"]} for d in p["deliveries"]]}
               for p in readmodel.parties(engine(), ticket_id)]
    return jsonify(ticket=_ticket_json(t), parties=parties, photos=[
        {"id": p["id"], "purpose": p["purpose"], "actor": p["actor"], "at": iso(p["at"]),
         "url": f"/api/v1/tickets/{ticket_id}/photos/{p['id']}"} for p in photos], timeline=[
        {"actor": r["actor"], "action": r["action"], "from": r["from_state"], "to": r["to_state"],
         "level": r["level"], "reason": r["reason"], "at": iso(r["at"])} for r in timeline])


@tickets_api.post("")
@api_auth
def report():
    """A grid worker reports a matter (巡查上报)."""
    if not may(g.user["role"], "change_tickets"):
        raise ApiError(403, "forbidden", "viewers cannot report")
    data = body()
    title = field_text(data, "title", max_len=200, required=True)
    grid_code = field_text(data, "grid_code", max_len=19, required=True)
    if not readmodel.grid_in_area(engine(), _prefix(), grid_code):
        raise ApiError(400, "bad_request", "grid_code: a grid inside your area")
    category = field_text(data, "category", max_len=32) or "other"
    if category not in dispatch.CATEGORIES:
        raise bad(f"category must be one of {', '.join(dispatch.CATEGORIES)}")
    ticket_id = dispatch.create_ticket(engine(), category=category,
                                       title=title, description=field_text(data, "description", max_len=4000),
                                       source="manual", grid_code=grid_code, actor=g.user["username"])
    _photo(ticket_id, "report")
    audit.record(engine(), g.user["username"], "report", str(ticket_id))
    return jsonify(ticket=_ticket_json(_visible(ticket_id))), 201


@tickets_api.post("/<id:ticket_id>/actions/<action>")
@api_auth
def act(ticket_id: int, action: str):
    _visible(ticket_id)
    if action not in dispatch.ACTIONS:
        raise ApiError(404, "not_found", f"no action {action[:40]!r}")
    data = body()
    if "photo" in request.files and action not in ("progress", "resolve"):
        raise bad("photos go with progress notes and resolutions")
    t = change_ticket(lambda: alarms.act(engine(), ticket_id, action, g.user, scope=_prefix(),
                                         reason=field_text(data, "reason"),
                                         grid_code=field_text(data, "grid_code", max_len=19),
                                         merged_into=field_id(data, "merged_into")))
    photo_id = _photo(ticket_id, action)
    audit.record(engine(), g.user["username"], f"ticket_{action}", str(ticket_id))
    return jsonify(ticket=_ticket_json(t), photo_id=photo_id)


@tickets_api.post("/<id:ticket_id>/parties/<id:notification_id>/ack")
@api_auth
def ack_party(ticket_id: int, notification_id: int):
    """A notified party's staff acknowledge it (收到); the first acknowledgement stands."""
    _visible(ticket_id)
    if not alarms.may_change(g.user["role"]):
        raise ApiError(403, "forbidden", "viewers cannot acknowledge")
    try:
        first = notify.acknowledge(engine(), notification_id, ticket_id, g.user["username"], _prefix())
    except notify.NotYours as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    audit.record(engine(), g.user["username"], "ack_notification", str(notification_id))
    return jsonify(notification_id=notification_id, acknowledged=True, first=first)


@tickets_api.get("/<id:ticket_id>/photos/<id:photo_id>")
@api_auth
def photo(ticket_id: int, photo_id: int):
    _visible(ticket_id)
    jpeg = readmodel.photo_jpeg(engine(), ticket_id, photo_id)
    if jpeg is None:
        raise ApiError(404, "not_found", f"no photo {photo_id} on ticket {ticket_id}")
    audit.record(engine(), g.user["username"], "view_photo", f"{ticket_id}/{photo_id}")
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


#: Open311 GeoReport v2 knows only open and closed
OPEN311_CLOSED = ("resolved", "verified", "archived", "merged", "void")


@tickets_api.get("/open311/requests.json")
@api_auth
def open311_requests():
    """Tickets in the caller's area as Open311 GeoReport v2 service requests."""
    rows = readmodel.tickets_with_places(engine(), _prefix(), closed=OPEN311_CLOSED,
                                         status=arg_choice("status", ("open", "closed")),
                                         limit=arg_int("limit", 100, 1, 1000))
    return jsonify([{
        "service_request_id": str(t["id"]),
        "status": "closed" if t["state"] in OPEN311_CLOSED else "open",
        "status_notes": f"{in_chinese(label, 'state', t['state'])} ({t['state']})",
        "service_name": t["category"], "service_code": t["category"],
        "description": t["description"] or t["title"],
        "requested_datetime": iso(t["created_at"]),
        "updated_datetime": iso(t["closed_at"] or t["resolved_at"] or t["accepted_at"] or t["created_at"]),
        "agency_responsible": in_chinese(label, "level", t["level"]),
        "address": t["address"], "lat": t["latitude"], "long": t["longitude"],
    } for t in rows])
