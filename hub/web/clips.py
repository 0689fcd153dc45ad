"""Event clips: staff ask for an event's clip and play it (scoped to their area, range requests);
devices upload clips with their own credential (HTTP Basic: device id and MQTT password)."""

from __future__ import annotations

import re

from flask import Blueprint, current_app, g, jsonify, request, send_file

from protocols.ids import DEVICE_ID_RE, EVENT_ID_RE

from .. import audit, auth, clips, registry
from .base import api_auth, engine, iso, user_prefix
from .params import ApiError

clips_api = Blueprint("clips_api", __name__, url_prefix="/api/v1")

_RANGE_RE = re.compile(r"bytes ([0-9]{1,12})-([0-9]{1,12})/([0-9]{1,12})")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


def _store() -> clips.ClipStore:
    store = current_app.extensions["xl"].get("clips")
    if store is None:
        raise ApiError(503, "clips_unavailable", "clip uploads are not running in this hub process")
    return store


def _call(fn):
    try:
        return fn()
    except clips.ClipError as exc:
        body = {"code": exc.code, "message": exc.message}
        if exc.received is not None:
            body["received"] = exc.received
        return jsonify(error=body), exc.status


def _clip_json(row: dict | None) -> dict:
    if not row:
        return {"state": "none"}
    return {"event_id": row["event_id"], "state": row["state"], "bytes_total": row["bytes_total"],
            "bytes_received": row["bytes_received"], "requested_at": iso(row["requested_at"]),
            "requested_by": row["requested_by"], "completed_at": iso(row["completed_at"]), "error": row["error"]}


def _visible_event(event_id: str) -> str:
    """The event's device if it lies in the caller's area; 404 otherwise (as if it did not exist)."""
    if not EVENT_ID_RE.fullmatch(event_id):
        raise ApiError(404, "not_found", f"no event {event_id[:40]!r}")
    device_id = clips.device_of_event(engine(), event_id)
    if device_id is None or not registry.list_devices(
            engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
            prefix=user_prefix(g.user), device_id=device_id):
        raise ApiError(404, "not_found", f"no event {event_id} in your area")
    return device_id


@clips_api.post("/events/<event_id>/clip")
@api_auth
def ask(event_id: str):
    """Ask the event's device for its clip (a durable command; the device uploads it)."""
    _visible_event(event_id)
    row = clips.request(engine(), event_id, g.user["username"])
    current_app.extensions["xl"]["commands_due"]()
    audit.record(engine(), g.user["username"], "request_clip", event_id)
    return jsonify(_clip_json(row)), 202


@clips_api.get("/events/<event_id>/clip/status")
@api_auth
def clip_status(event_id: str):
    _visible_event(event_id)
    return jsonify(_clip_json(clips.status(engine(), event_id)))


@clips_api.get("/events/<event_id>/clip")
@api_auth
def play(event_id: str):
    """The clip (video/mp4, with range requests) once it is at the hub; viewing it is audited."""
    _visible_event(event_id)
    row = clips.status(engine(), event_id)
    if not row or row["state"] != "complete":
        raise ApiError(404, "not_uploaded", f"the clip of {event_id} is not at the hub "
                                            f"({row['state'] if row else 'not asked for'})")
    audit.record(engine(), g.user["username"], "view_clip", event_id)
    return send_file(_store().root / row["path"], mimetype="video/mp4", conditional=True,
                     download_name=f"{event_id}.mp4")


def _device(device_id: str) -> str:
    """The device's own credential (HTTP Basic), for its own URL only."""
    creds = request.authorization
    if (not DEVICE_ID_RE.fullmatch(device_id) or creds is None or creds.type != "basic"
            or creds.username != device_id or not auth.check_device_secret(engine(), device_id, creds.password or "")):
        raise ApiError(401, "unauthorized", "a device uploads with HTTP Basic: its device id and MQTT password")
    return device_id


@clips_api.get("/devices/<device_id>/clips/<event_id>")
def upload_offset(device_id: str, event_id: str):
    """How much of the clip the hub holds: where the device's upload goes on."""
    _device(device_id)
    if not EVENT_ID_RE.fullmatch(event_id):
        raise ApiError(404, "not_found", f"no event {event_id[:40]!r}")
    store = _store()
    row = clips.status(engine(), event_id)
    return _call(lambda: jsonify(received=store.offset(device_id, event_id),
                                 state=row["state"] if row else "none", sha256=row["sha256"] if row else None))


@clips_api.put("/devices/<device_id>/clips/<event_id>")
def upload_piece(device_id: str, event_id: str):
    """One piece of a clip: ``Content-Range: bytes START-END/TOTAL`` and ``X-Content-SHA256`` of
    the whole file."""
    _device(device_id)
    if not EVENT_ID_RE.fullmatch(event_id):
        raise ApiError(404, "not_found", f"no event {event_id[:40]!r}")
    m = _RANGE_RE.fullmatch(request.headers.get("Content-Range", ""))
    sha = request.headers.get("X-Content-SHA256", "").lower()
    if m is None or not _SHA_RE.fullmatch(sha):
        raise ApiError(400, "bad_request", "send Content-Range: bytes START-END/TOTAL and X-Content-SHA256 (hex)")
    start, end, total = (int(x) for x in m.groups())
    store = _store()
    if request.content_length is not None and request.content_length > clips.MAX_PIECE:
        raise ApiError(413, "too_large", f"pieces are at most {clips.MAX_PIECE} bytes")
    body = request.get_data(cache=False)
    return _call(lambda: jsonify(_clip_json(store.receive(device_id, event_id, start, end, total, sha, body))))
