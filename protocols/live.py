"""Live video signalling between the hub and a device (v1 addition): the hub passes a browser's
WebRTC offer to the device over MQTT and the device answers with its own SDP.

``xl/v1/dev/<id>/live`` (hub → device, QoS 1, not retained) carries a ``LiveRequest``:
``op`` ``offer`` (with ``sdp``, ``camera``, ``quality`` and the TURN servers the device must use
for this session) or ``close``. ``xl/v1/dev/<id>/live_answer`` (device → hub, QoS 1) carries a
``LiveAnswer`` for the same ``session``: the answer's ``sdp``, or an ``error`` (unknown camera,
too many viewers, no video on this device). A live session is now or never: nothing here is
queued for a device that is away, and an answer older than the hub's wait is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import SCHEMA_VERSION, ProtocolError
from .messages import _dumps, _field, _loads, _text, _timestamp

OPS = ("offer", "close")
QUALITIES = ("main", "wall")  # a single view, or a smaller stream for a video-wall tile
MAX_SDP = 64 * 1024
MAX_ICE_SERVERS = 4
_SESSION_RE = re.compile(r"[0-9a-f]{32}")
_CAMERA_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_TURN_URL_RE = re.compile(r"(turns?:[A-Za-z0-9.:\[\]-]{1,100}(\?transport=(udp|tcp))?|stun:[A-Za-z0-9.:\[\]-]{1,100})")


@dataclass(frozen=True)
class IceServer:
    """A TURN server with the session's short-lived credentials (TURN REST API scheme)."""

    urls: tuple[str, ...]
    username: str | None = None  # a STUN-only server has none
    credential: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out.update(username=self.username, credential=self.credential)
        return out


@dataclass(frozen=True)
class LiveRequest:
    op: str
    session: str
    ts: float
    camera: str | None = None
    sdp: str | None = None
    quality: str = "main"
    audio: bool = False  # talk-back: the offer carries an audio section the device answers
    ice_servers: tuple[IceServer, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class LiveAnswer:
    session: str
    ts: float
    sdp: str | None = None
    error: str | None = None


def check_session(value: object) -> str:
    if not isinstance(value, str) or not _SESSION_RE.fullmatch(value):
        raise ProtocolError("session must be 32 lowercase hex digits")
    return value


def check_camera(value: object) -> str:
    if not isinstance(value, str) or not _CAMERA_RE.fullmatch(value):
        raise ProtocolError("camera must be 1-32 letters, digits, '_', '.' or '-'")
    return value


def _sdp(obj: dict[str, Any]) -> str:
    sdp = _field(obj, "sdp", str)
    if not sdp.startswith("v=0") or len(sdp) > MAX_SDP:
        raise ProtocolError(f"sdp must be an SDP body (v=0 ...) of at most {MAX_SDP} characters")
    return sdp


def _ice_server(obj: object) -> IceServer:
    if not isinstance(obj, dict):
        raise ProtocolError("ice_servers entries must be objects")
    urls = _field(obj, "urls", list)
    if not 1 <= len(urls) <= 4 or not all(isinstance(u, str) and _TURN_URL_RE.fullmatch(u) for u in urls):
        raise ProtocolError("ice_servers urls must be 1-4 turn:/turns: URLs")
    username = _text(obj, "username", limit=128)
    credential = _text(obj, "credential", limit=128)
    if any(u.startswith("turn") for u in urls) and not (username and credential):
        raise ProtocolError("ice_servers turn: entries need username and credential")
    return IceServer(tuple(urls), username, credential)


def encode_request(req: LiveRequest) -> bytes:
    if req.op not in OPS:
        raise ProtocolError(f"unknown live op {req.op!r}")
    obj: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "op": req.op, "session": check_session(req.session),
                           "ts": req.ts}
    if req.op == "offer":
        obj.update(camera=check_camera(req.camera), sdp=req.sdp, quality=req.quality, audio=req.audio,
                   ice_servers=[s.as_dict() for s in req.ice_servers])
    return _dumps(obj)


def decode_request(payload: bytes | str) -> LiveRequest:
    obj = _loads(payload)
    op = _field(obj, "op", str)
    if op not in OPS:
        raise ProtocolError(f"unknown live op {op[:20]!r}")
    session, ts = check_session(obj.get("session")), _timestamp(obj, "ts")
    if op == "close":
        return LiveRequest(op=op, session=session, ts=ts)
    quality = obj.get("quality", "main")
    if quality not in QUALITIES:
        raise ProtocolError(f"quality must be one of {', '.join(QUALITIES)}")
    audio = obj.get("audio", False)
    if not isinstance(audio, bool):
        raise ProtocolError("audio must be true or false")
    servers = obj.get("ice_servers", [])
    if not isinstance(servers, list) or len(servers) > MAX_ICE_SERVERS:
        raise ProtocolError(f"ice_servers must be a list of at most {MAX_ICE_SERVERS}")
    return LiveRequest(op=op, session=session, ts=ts, camera=check_camera(obj.get("camera")), sdp=_sdp(obj),
                       quality=quality, audio=audio, ice_servers=tuple(_ice_server(s) for s in servers))


def encode_answer(ans: LiveAnswer) -> bytes:
    obj: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "session": check_session(ans.session), "ts": ans.ts}
    if ans.sdp is not None:
        obj["sdp"] = ans.sdp
    if ans.error is not None:
        obj["error"] = ans.error[:200]
    return _dumps(obj)


def decode_answer(payload: bytes | str) -> LiveAnswer:
    obj = _loads(payload)
    session, ts = check_session(obj.get("session")), _timestamp(obj, "ts")
    error = _text(obj, "error")
    sdp = _sdp(obj) if "sdp" in obj else None
    if (sdp is None) == (error is None):
        raise ProtocolError("an answer has either sdp or error")
    return LiveAnswer(session=session, ts=ts, sdp=sdp, error=error)
