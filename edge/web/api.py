"""JSON API of the LAN page, the event stream (SSE), live video signalling, MJPEG, media."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file, session, stream_with_context
from werkzeug.security import safe_join

from common.times import parse_time

from ..store import NewEvent
from .auth import operator_only

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


def ctx():
    return current_app.extensions["xl"]


def _error(code: str, message: str, status: int):
    return jsonify(error={"code": code, "message": message}), status


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        body, status = _error("bad_time", str(exc), 400)
        body.status_code = status
        abort(body)


def view(row: dict) -> dict:
    """An event as the page shows it: paths on the device become URLs."""
    data = dict(row["data"])
    out = {"id": row["id"], "seq": row["seq"], "type": row["type"], "ts": row["ts"],
           "synced": row["synced_at"] is not None, "camera": data.get("camera")}
    thumb = data.pop("thumb", None)
    if thumb:
        out["thumb"] = "data:image/jpeg;base64," + thumb
    for key in ("snapshot", "clip", "crop"):
        if data.get(key):
            out[key + "_url"] = "/media/" + data.pop(key)
    out["data"] = data
    return out


@bp.route("/api/events")
def events():
    a = request.args
    try:
        limit = min(int(a.get("limit", 50)), 500)
        before = int(a["before"]) if a.get("before") else None
    except ValueError:
        return _error("bad_request", "limit and before are integers", 400)
    # a motion's end is folded into the motion itself: its update is not a line of its own
    rows = ctx().store.events(camera=a.get("camera") or None, type=a.get("type") or None,
                              since=_time(a.get("since")), until=_time(a.get("until")), before_seq=before,
                              limit=limit, exclude_type=None if a.get("type") else "motion_update")
    return jsonify(items=[view(r) for r in rows], next_before=rows[-1]["seq"] if len(rows) == limit else None)


@bp.route("/api/events/stream")
def stream():
    """Server-Sent Events: every new event as it is stored (``event: xl``), the alarm banners
    whenever an alarm's state changes (``event: alarms``), keepalives between."""
    store, feed, book = ctx().store, ctx().feed, ctx().alarms
    last = int(request.args.get("after") or request.headers.get("Last-Event-ID") or store.last_seq())

    @stream_with_context
    def generate():
        nonlocal last
        version = feed.version
        shown = None
        yield "retry: 2000\n\n"
        while True:
            rows = store.events(after_seq=last, limit=200)
            for row in rows:
                last = row["seq"]
                yield f"id: {last}\nevent: xl\ndata: {json.dumps(view(row), ensure_ascii=False)}\n\n"
            banners = alarm_banners(book)
            if banners != shown:
                shown = banners
                yield f"event: alarms\ndata: {json.dumps(banners, ensure_ascii=False)}\n\n"
            if not rows:
                new = feed.wait(version, 15.0)
                if new == version:
                    yield ": keepalive\n\n"
                version = new

    return Response(generate(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def alarm_banners(book) -> list[dict]:
    """One banner per alarm of the last ``alarm_window_s`` not yet closed, newest first: its
    state (waiting for someone / help coming), presses, and who acknowledged it, from where."""
    return [{"id": a.id, "ts": a.ts, "state": a.state, "presses": a.presses, "by": a.by, "via": a.via,
             "waiting": a.state not in ("help_coming", "closed")} for a in book.recent()]


@bp.route("/api/alarms")
def alarms():
    return jsonify(items=alarm_banners(ctx().alarms))


def _acknowledge(alarm_ids: list[str]) -> list[str]:
    """The hub hears of it as ``alarm_ack`` events (urgent lane), stored before the state moves:
    a crash between the two leaves the banner up, to be acknowledged again, never a silent ack."""
    c = ctx()
    if not alarm_ids:
        return []
    c.store.add_many([NewEvent("alarm_ack", {"alarm_id": a, "by": session["user"], "via": "lan"})
                      for a in alarm_ids])
    c.alarms.acknowledge(alarm_ids, session["user"])
    logger.info("LAN page: %s acknowledged alarm(s) %s", session["user"], ", ".join(alarm_ids))
    return alarm_ids


@bp.route("/api/alarms/<alarm_id>/ack", methods=["POST"])
def ack(alarm_id: str):
    denied = operator_only()
    if denied:
        return denied
    if alarm_id not in ctx().alarms.open_ids():
        return _error("not_found", "no such open alarm", 404)
    _acknowledge([alarm_id])
    return jsonify(alarm_id=alarm_id, acknowledged=[alarm_id])


@bp.route("/api/alarms/ack-all", methods=["POST"])
def ack_all():
    denied = operator_only()
    if denied:
        return denied
    return jsonify(acknowledged=_acknowledge(ctx().alarms.open_ids()))


@bp.route("/api/health")
def health():
    c = ctx()
    cams = []
    states = c.vision.camera_states() if c.vision is not None else {}
    rates = c.meters.rates() if c.meters is not None else {}
    for name in c.cameras:
        enc = c.live.encoders.get(name) if c.live is not None else None
        cams.append({"name": name, "state": states.get(name, "down"), "fps": round(rates.get(name, 0.0), 1),
                     "viewers": (c.live.viewer_count(name) if c.live else 0) + (c.mjpeg[name].viewers if name in c.mjpeg else 0),
                     "bitrate_kbps": round(enc.bitrate_bps() / 1000) if enc else 0})
    media_root = c.cfg.resolve(c.cfg.media.path)
    disk = shutil.disk_usage(media_root if media_root.exists() else c.store.path.parent)
    sync = c.sync
    out = {"device": {"id": c.cfg.device.id, "name": c.cfg.device.name}, "cameras": cams,
           "disk": {"total": disk.total, "free": disk.free, "media_bytes": c.store.media_bytes(),
                    "quota_bytes": c.cfg.media.quota_mb << 20},
           "outbox": c.store.outbox_depth(),
           "sync": {"connected": bool(sync and sync.connected), "hub_online": sync.hub_online if sync else None,
                    "last_hub_contact": sync.last_hub_contact if sync else None},
           "mcu": None if c.pillar is None else {"online": c.pillar.mcu_online, "led": int(c.pillar.led)}}
    return jsonify(out)


@bp.route("/api/live/<camera>/offer", methods=["POST"])
def offer(camera: str):
    c = ctx()
    if c.live is None or camera not in c.live.encoders:
        return _error("not_found", "no such camera", 404)
    body = request.get_json(silent=True) or {}
    if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        return _error("bad_request", "send {type: 'offer', sdp}", 400)
    try:
        answer = c.live.answer(camera, body["sdp"], "offer")
    except Exception as exc:  # a broken offer must not take the page down
        logger.warning("live offer for %s failed: %s", camera, exc)
        return _error("webrtc", f"cannot answer the offer: {exc}", 400)
    return jsonify(answer)


@bp.route("/live/<camera>.mjpg")
def mjpeg(camera: str):
    source = ctx().mjpeg.get(camera)
    if source is None:
        abort(404)
    fps = min(10.0, ctx().web.live_fps)

    def generate():
        source.viewers += 1
        try:
            index = -1
            while True:
                got = source.jpeg(index)
                if got is None:  # the camera is down: repeat the last picture, which also tells
                    got = source.last()  # the server when the viewer has gone
                    if got is None:
                        yield b"--frame\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n\r\n"
                        continue
                index, jpeg = got
                yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode()
                       + b"\r\n\r\n" + jpeg + b"\r\n")
                time.sleep(1.0 / fps)
        finally:
            source.viewers -= 1

    return Response(generate(), mimetype="multipart/x-mixed-replace; boundary=frame",
                    headers={"Cache-Control": "no-cache"})


@bp.route("/media/<path:rel>")
def media(rel: str):
    """Snapshots, face crops and clips: only files the store knows, inside the media folder;
    clips with HTTP range requests."""
    c = ctx()
    root = c.cfg.resolve(c.cfg.media.path).resolve()
    path = safe_join(str(root), rel)
    if path is None or not c.store.media_path_known(rel) or not _plain_file_inside(root, path):
        abort(404)
    return send_file(path, conditional=True, max_age=3600)


def _plain_file_inside(root: Path, path: str) -> bool:
    """A regular file reached without following any symbolic link (a media file or folder
    replaced by a link to elsewhere is not served)."""
    path = os.path.normpath(path)
    if os.path.realpath(path) != path or not path.startswith(str(root) + os.sep):
        return False
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
