"""Live video at the hub: the session API (signalling through the hub, media through coturn),
the device page's player, the video wall and the viewing record (视频调阅登记) for admins.

A device outside the caller's area is a 404 exactly like a missing one; so is another user's
session."""

from __future__ import annotations

import csv
import io
import time

from flask import Blueprint, Response, abort, current_app, g, jsonify, render_template, session

from common.times import parse_time
from protocols import ProtocolError
from protocols.ids import DEVICE_ID_RE
from protocols.live import QUALITIES, check_camera

from .. import eventlog, readmodel, registry
from ..access import may
from ..live import PAGES, LiveError, own_session, sessions_list
from .base import api_auth, csrf_token, engine, login_required, user_prefix
from .i18n import local_time
from .params import ApiError, arg_text, bad, body, field_id, field_text

live_api = Blueprint("live_api", __name__, url_prefix="/api/v1")
live_pages = Blueprint("live_pages", __name__)

SESSION_PATTERN = r"[0-9a-f]{32}"


def _sessions():
    live = current_app.extensions["xl"].get("live")
    if live is None:
        raise ApiError(503, "live_unavailable", "live video is not running in this hub process")
    return live


def _device(device_id: str, user: dict) -> dict:
    """The device if it lies in the user's area; 404 otherwise (as if it did not exist)."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ApiError(404, "not_found", f"no device {device_id[:40]!r}")
    items = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                  prefix=user_prefix(user), device_id=device_id)
    if not items:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return items[0]


def live_enabled() -> bool:
    live = current_app.extensions["xl"].get("live")
    return live is not None and live.enabled


def cameras_of(device: dict) -> list[str]:
    """The device's cameras as its heartbeat names them."""
    hb = device.get("heartbeat") or {}
    return sorted((hb.get("cameras") or {}).keys())


def _session_id(value: str) -> str:
    """A session of the caller's (404 otherwise, before anything else is looked at)."""
    import re
    if not re.fullmatch(SESSION_PATTERN, value):
        raise ApiError(404, "not_found", "no such live session")
    with engine().connect() as conn:
        _call(lambda: own_session(conn, g.user, value))
    return value


def may_talk(user: dict, device: dict) -> bool:
    """Push-to-talk is offered for an alarm pillar to staff who may handle tickets."""
    return device.get("kind") == "alarm-pillar" and may(user["role"], "change_tickets")


def _sdp(data: dict) -> str:
    """An SDP body: lines end in CRLF, and no other control character is allowed."""
    import re
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > 60000:
        raise bad("sdp must be the offer's SDP (v=0 ...), at most 60,000 characters")
    if re.search(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]", sdp):
        raise bad("sdp holds a control character other than CR and LF")
    return sdp


def _call(fn):
    try:
        return fn()
    except LiveError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


@live_api.post("/devices/<device_id>/live")
@api_auth
def start(device_id: str):
    """Start a live view of one of the device's cameras: the session and its TURN credentials."""
    device = _device(device_id, g.user)
    data = body()
    camera = field_text(data, "camera", max_len=32, required=True)
    try:
        check_camera(camera)
    except ProtocolError as exc:
        raise bad(f"camera: {exc.reason}") from None
    if camera not in cameras_of(device):
        raise ApiError(404, "not_found", f"the device has no camera {camera!r}")
    page = field_text(data, "page", max_len=16) or "api"
    if page not in PAGES:
        raise bad(f"page must be one of {', '.join(PAGES)}")
    quality = field_text(data, "quality", max_len=8) or "main"
    if quality not in QUALITIES:
        raise bad(f"quality must be one of {', '.join(QUALITIES)}")
    talk = data.get("talk", False)
    if not isinstance(talk, bool):
        raise bad("talk must be true or false")
    if talk and not may(g.user["role"], "change_tickets"):
        raise ApiError(403, "forbidden", "viewers may watch but not talk")
    out = _call(lambda: _sessions().start_session(
        g.user, device_id, camera, page=page, quality=quality, reason=field_text(data, "reason", max_len=200),
        ticket_id=field_id(data, "ticket_id"), talk=talk))
    return jsonify(out), 201


@live_api.post("/live/<session_id>/offer")
@api_auth
def offer(session_id: str):
    """The browser's offer (SDP, all ICE candidates gathered) in; the device's answer out."""
    sid = _session_id(session_id)
    sdp = _sdp(body())
    answer = _call(lambda: _sessions().offer(g.user, sid, sdp))
    return jsonify(type="answer", sdp=answer)


@live_api.post("/live/<session_id>/keepalive")
@api_auth
def keepalive(session_id: str):
    sid = _session_id(session_id)
    _call(lambda: _sessions().keepalive(g.user, sid))
    return "", 204


@live_api.post("/live/<session_id>/close")
@api_auth
def close(session_id: str):
    sid = _session_id(session_id)
    _call(lambda: _sessions().close(g.user, sid))
    return "", 204


# --- pages ------------------------------------------------------------------------------------

@live_pages.get("/devices/<device_id>")
@login_required
def device_page(device_id: str):
    try:
        device = _device(device_id, session["user"])
    except ApiError:
        abort(404)
    events = eventlog.query_events(engine(), device=device_id, limit=20)
    return render_template("device.html", d=device, cameras=cameras_of(device), user=session["user"],
                           live_enabled=live_enabled(), events=events,
                           history=readmodel.status_history(engine(), device_id),
                           talk=may_talk(session["user"], device), csrf_token=csrf_token())


@live_pages.get("/wall")
@login_required
def wall():
    devices = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                    prefix=user_prefix(session["user"]))
    tiles = [{"device_id": d["id"], "name": d.get("name") or d["id"], "camera": cam}
             for d in devices for cam in cameras_of(d)]
    return render_template("wall.html", tiles=tiles if live_enabled() else [], user=session["user"],
                           live_enabled=live_enabled(), csrf_token=csrf_token())


def _cell(text: str) -> str:
    """Free text in a CSV cell that a spreadsheet would run as a formula is kept as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _admin() -> None:
    if session["user"]["role"] != "admin":
        abort(403)


def _record_rows() -> list[dict]:
    since = arg_text("since", max_len=40)
    try:
        since_ts = parse_time(since) if since else time.time() - 30 * 86400
    except ValueError as exc:
        raise bad(f"since: {exc}") from None
    return sessions_list(engine(), since=since_ts, device_id=arg_text("device", max_len=20, pattern=DEVICE_ID_RE))


@live_pages.get("/views")
@login_required
def views():
    """The viewing record (视频调阅登记): admins only."""
    _admin()
    return render_template("views.html", rows=_record_rows(), user=session["user"], csrf_token=csrf_token())


@live_pages.get("/views.csv")
@login_required
def views_csv():
    _admin()
    out = io.StringIO()
    w = csv.writer(out)
    zone = current_app.extensions["xl"]["zone"].key
    w.writerow(["session", "user", "device", "camera", "page", "quality", "talk", "reason", "ticket",
                f"started ({zone})", f"ended ({zone})", "duration_s", "outcome", "detail"])
    for r in _record_rows():
        w.writerow([r["id"], r["username"], r["device_id"], r["camera"], r["page"], r["quality"], int(r["talk"]),
                    _cell(r["reason"] or ""), r["ticket_id"] or "", local_time(r["started_at"]), local_time(r["ended_at"]),
                    r["duration_s"], r["outcome"], _cell(r["detail"] or "")])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=view-sessions.csv"})
