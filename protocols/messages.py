"""Message types of protocol v1 and their JSON encoding.

Every payload is a UTF-8 JSON object with ``schema_version``. ``decode_*`` functions
check structure, types and bounds and raise ``ProtocolError`` with a reason; they
never return a half-valid message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from . import SCHEMA_VERSION, ProtocolError, strictjson
from .ids import check_device_id, check_event_id

MAX_PAYLOAD_BYTES = 1024 * 1024
#: objects and arrays nest at most this deep in any payload (an event's ``data`` box lists use 4)
MAX_DEPTH = 16
MAX_ACK_IDS = 5000
MAX_TEXT = 200  # longest free-text field in a status (model, software, address)
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class Priority(IntEnum):
    """Outbox lanes: higher drains first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3


#: Default priority of each event type the project emits. Unknown types are accepted
#: on the wire (forward compatibility) with the priority the sender gave them.
EVENT_TYPES: dict[str, Priority] = {
    "motion": Priority.NORMAL,
    "motion_update": Priority.NORMAL,
    "face": Priority.NORMAL,
    "video_loss": Priority.HIGH,
    "camera_restored": Priority.HIGH,
    "tamper": Priority.HIGH,
    "mcu_lost": Priority.HIGH,
    "mcu_restored": Priority.HIGH,
    "alarm": Priority.URGENT,
    "alarm_update": Priority.URGENT,
    "alarm_ack": Priority.URGENT,
}


def _loads(payload: bytes | str) -> dict[str, Any]:
    obj = strictjson.loads(payload, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_DEPTH)
    if not isinstance(obj, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ProtocolError(f"schema_version must be {SCHEMA_VERSION}, got {version!r}")
    return obj


def _dumps(obj: dict[str, Any]) -> bytes:
    return strictjson.dumps(obj)


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if name not in obj:
        if optional:
            return None
        raise ProtocolError(f"missing field {name!r}")
    value = obj[name]
    if optional and value is None:
        return None
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(f"field {name!r} must be {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise ProtocolError(f"field {name!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _text(obj: dict[str, Any], name: str, *, limit: int = MAX_TEXT) -> str | None:
    value = _field(obj, name, str, optional=True)
    if value is not None and len(value) > limit:
        raise ProtocolError(f"field {name!r} is longer than {limit} characters")
    return value


def _timestamp(obj: dict[str, Any], name: str) -> float:
    value = float(_field(obj, name, (int, float)))
    if not math.isfinite(value) or not 1e9 <= value <= 1e11:
        raise ProtocolError(f"field {name!r} must be unix seconds, got {value!r}")
    return value


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happened on a device. ``id`` is a UUIDv7 made on the edge; ``seq`` is the
    device's own increasing counter; ``ts`` is unix seconds when it happened."""

    id: str
    device_id: str
    type: str
    ts: float
    seq: int
    priority: int = Priority.NORMAL
    data: dict[str, Any] = field(default_factory=dict)


def encode_event(ev: Event) -> bytes:
    return _dumps({
        "schema_version": SCHEMA_VERSION,
        "id": ev.id,
        "device_id": ev.device_id,
        "type": ev.type,
        "ts": ev.ts,
        "seq": ev.seq,
        "priority": int(ev.priority),
        "data": ev.data,
    })


def decode_event(payload: bytes | str, *, topic_device: str | None = None) -> Event:
    """Decode an event; if ``topic_device`` is given the payload must name the same device."""
    obj = _loads(payload)
    ev_type = _field(obj, "type", str)
    if not _TYPE_RE.fullmatch(ev_type):
        raise ProtocolError(f"event type must match {_TYPE_RE.pattern}, got {ev_type[:40]!r}")
    seq = _field(obj, "seq", int)
    if seq < 0:
        raise ProtocolError(f"seq must be >= 0, got {seq}")
    priority = _field(obj, "priority", int)
    if priority not in Priority._value2member_map_:
        raise ProtocolError(f"priority must be 0..3, got {priority}")
    data = _field(obj, "data", dict)
    device_id = check_device_id(obj.get("device_id"))
    event_id = check_event_id(obj.get("id"))
    if topic_device is not None and device_id != topic_device:
        raise ProtocolError(f"payload device_id {device_id} does not match topic device {topic_device}")
    return Event(id=event_id, device_id=device_id, type=ev_type, ts=_timestamp(obj, "ts"),
                 seq=seq, priority=priority, data=data)


# --- acks -------------------------------------------------------------------------------


def encode_ack(ids: list[str]) -> bytes:
    return _dumps({"schema_version": SCHEMA_VERSION, "ids": list(ids)})


def decode_ack(payload: bytes | str) -> list[str]:
    obj = _loads(payload)
    ids = _field(obj, "ids", list)
    if len(ids) > MAX_ACK_IDS:
        raise ProtocolError(f"ack carries {len(ids)} ids, more than {MAX_ACK_IDS}")
    return [check_event_id(i) for i in ids]


# --- device status (birth / last will) ------------------------------------------------------

#: a device's or the hub's link state (not a ticket state: those are hub.dispatch.STATES)
LINK_STATES = ("online", "offline")


@dataclass(frozen=True)
class Status:
    """Retained device status. The birth message (``online``) also carries what the device
    says about itself, so the hub registry learns kind, model and location from it."""

    state: str
    ts: float
    kind: str | None = None
    model: str | None = None
    software: str | None = None
    grid_code: str | None = None
    location: dict[str, Any] | None = None


def encode_status(st: Status) -> bytes:
    obj: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "state": st.state, "ts": st.ts}
    for name in ("kind", "model", "software", "grid_code", "location"):
        value = getattr(st, name)
        if value is not None:
            obj[name] = value
    return _dumps(obj)


def decode_status(payload: bytes | str) -> Status:
    obj = _loads(payload)
    state = _field(obj, "state", str)
    if state not in LINK_STATES:
        raise ProtocolError(f"state must be one of {LINK_STATES}, got {state[:20]!r}")
    location = _field(obj, "location", dict, optional=True)
    if location is not None:
        location = _location(location)
    return Status(
        state=state,
        ts=_timestamp(obj, "ts"),
        kind=_text(obj, "kind", limit=32),
        model=_text(obj, "model", limit=64),
        software=_text(obj, "software", limit=64),
        grid_code=_text(obj, "grid_code", limit=19),
        location=location,
    )


def _location(loc: dict[str, Any]) -> dict[str, Any]:
    """``latitude``/``longitude`` in degrees and ``address``; other keys are dropped."""
    out: dict[str, Any] = {}
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = loc.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -bound <= value <= bound:
            raise ProtocolError(f"location.{name} must be a number within ±{bound:g}, got {str(value)[:20]!r}")
        out[name] = float(value)
    address = _text(loc, "address")
    if address is not None:
        out["address"] = address
    return out


# --- heartbeat ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    ts: float
    uptime_s: float
    disk_free_bytes: int
    outbox_depth: int
    cameras: dict[str, float] = field(default_factory=dict)
    #: camera name -> "up", "down" or "stalled" (optional; a compatible v1 addition)
    camera_states: dict[str, str] = field(default_factory=dict)


CAMERA_STATES = ("up", "down", "stalled")


def encode_heartbeat(hb: Heartbeat) -> bytes:
    obj = {
        "schema_version": SCHEMA_VERSION,
        "ts": hb.ts,
        "uptime_s": round(hb.uptime_s, 3),
        "disk_free_bytes": hb.disk_free_bytes,
        "outbox_depth": hb.outbox_depth,
        "cameras": {k: round(v, 2) for k, v in hb.cameras.items()},
    }
    if hb.camera_states:
        obj["camera_states"] = dict(hb.camera_states)
    return _dumps(obj)


def decode_heartbeat(payload: bytes | str) -> Heartbeat:
    obj = _loads(payload)
    cameras = _field(obj, "cameras", dict)
    if len(cameras) > 64:
        raise ProtocolError(f"cameras names {len(cameras)} cameras, more than 64")
    for name, fps in cameras.items():
        if len(name) > 64:
            raise ProtocolError(f"camera name {name[:40]!r}… is longer than 64 characters")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps < 0:
            raise ProtocolError(f"cameras[{name[:40]!r}] must be a non-negative number")
    uptime = float(_field(obj, "uptime_s", (int, float)))
    disk_free = _field(obj, "disk_free_bytes", int)
    depth = _field(obj, "outbox_depth", int)
    if uptime < 0 or disk_free < 0 or depth < 0:
        raise ProtocolError("uptime_s, disk_free_bytes and outbox_depth must be >= 0")
    states = _field(obj, "camera_states", dict, optional=True) or {}
    if len(states) > 64 or any(len(k) > 64 or v not in CAMERA_STATES for k, v in states.items()):
        raise ProtocolError(f"camera_states must map at most 64 camera names to one of {CAMERA_STATES}")
    return Heartbeat(ts=_timestamp(obj, "ts"), uptime_s=uptime, disk_free_bytes=disk_free,
                     outbox_depth=depth, cameras={k: float(v) for k, v in cameras.items()}, camera_states=states)


# --- hub status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HubStatus:
    """The hub's link state. ``boot`` (optional, v1 addition) names one run of the hub: a device
    that sees a new ``boot`` knows the hub restarted even if it never saw its ``offline``."""

    state: str
    ts: float
    boot: str | None = None
    #: the hub takes urgent-lane events on the ``urgent`` topic (v1 addition); otherwise devices
    #: send them on ``event`` like every other event
    urgent_lane: bool = False


def encode_hub_status(state: str, ts: float, boot: str | None = None, urgent_lane: bool = False) -> bytes:
    if state not in LINK_STATES:
        raise ProtocolError(f"state must be one of {LINK_STATES}")
    obj: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "state": state, "ts": ts}
    if boot is not None:
        obj["boot"] = boot
    if urgent_lane:
        obj["urgent_lane"] = True
    return _dumps(obj)


def decode_hub_status(payload: bytes | str) -> HubStatus:
    obj = _loads(payload)
    state = _field(obj, "state", str)
    if state not in LINK_STATES:
        raise ProtocolError(f"state must be one of {LINK_STATES}, got {state[:20]!r}")
    boot = _text(obj, "boot", limit=64)
    return HubStatus(state=state, ts=_timestamp(obj, "ts"), boot=boot,
                     urgent_lane=_field(obj, "urgent_lane", bool, optional=True) is True)


# --- commands (hub -> device) -----------------------------------------------------------------

#: ``help_coming``: someone at the centre (or the village monitor) accepted alarm ``alarm_id``;
#: ``alarm_closed``: the alarm's ticket was closed, the pillar and the LAN page stand down
COMMANDS = ("help_coming", "alarm_closed", "upload_clip")
ALARM_COMMANDS = ("help_coming", "alarm_closed")
EVENT_COMMANDS = ("upload_clip",)  # name an event (event_id): a compatible v1 addition


@dataclass(frozen=True)
class Command:
    """A hub -> device command. ``id`` (v1 addition) makes it durable: the hub sends it again until
    the device acks the id on ``cmd_ack``, and the device applies each id once; ``expires`` (unix
    seconds) is when the hub stops sending it; ``by`` is who caused it (a user name)."""

    command: str
    ts: float
    alarm_id: str | None = None
    id: str | None = None
    expires: float | None = None
    by: str | None = None
    event_id: str | None = None


def encode_command(cmd: Command) -> bytes:
    if cmd.command not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd.command!r}")
    obj: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "command": cmd.command, "ts": cmd.ts}
    for name in ("alarm_id", "id", "expires", "by", "event_id"):
        value = getattr(cmd, name)
        if value is not None:
            obj[name] = value
    return _dumps(obj)


def decode_command(payload: bytes | str) -> Command:
    obj = _loads(payload)
    command = _field(obj, "command", str)
    if command not in COMMANDS:
        raise ProtocolError(f"unknown command {command[:40]!r}")
    alarm_id = obj.get("alarm_id")
    cmd_id = obj.get("id")
    if command in ALARM_COMMANDS and alarm_id is None:
        raise ProtocolError(f"{command} needs alarm_id")
    event_id = obj.get("event_id")
    if command in EVENT_COMMANDS and event_id is None:
        raise ProtocolError(f"{command} needs event_id")
    return Command(command=command, ts=_timestamp(obj, "ts"),
                   alarm_id=check_event_id(alarm_id) if alarm_id is not None else None,
                   id=check_event_id(cmd_id) if cmd_id is not None else None,
                   expires=_timestamp(obj, "expires") if obj.get("expires") is not None else None,
                   by=_text(obj, "by", limit=64),
                   event_id=check_event_id(event_id) if event_id is not None else None)


def encode_command_ack(ids: list[str]) -> bytes:
    """``cmd_ack``: the ids of commands the device has applied (or had applied before)."""
    return encode_ack(ids)


def decode_command_ack(payload: bytes | str) -> list[str]:
    return decode_ack(payload)
