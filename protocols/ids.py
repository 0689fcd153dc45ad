"""Identifiers: sortable event ids (UUIDv7) and GB/T 28181-style device ids."""

from __future__ import annotations

import re
import secrets
import threading
import time

from . import ProtocolError

#: full-match patterns of the two identifiers (the API and its OpenAPI document use them too)
EVENT_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DEVICE_ID_RE = re.compile(r"[0-9]{20}")

#: GB/T 28181 device type codes (digits 11-13 of the id) that Xueliang devices use.
DEVICE_TYPES = {
    "131": "camera",
    "132": "ip camera (IPC)",
    "134": "alarm input",
    "135": "alarm output",
    "136": "voice input",
    "137": "voice output",
}


class EventIdGenerator:
    """UUIDv7 ids (RFC 9562): 48-bit unix milliseconds, then a counter that keeps ids
    from one generator strictly increasing within a millisecond, then random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new(self, now_ms: int | None = None) -> str:
        with self._lock:
            ms = int(time.time() * 1000) if now_ms is None else now_ms
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    ms += 1
                    self._counter = 0
            else:
                self._counter = secrets.randbits(10)
            self._last_ms = ms
            counter = self._counter
        rand = secrets.randbits(62)
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_event_id(value: object) -> str:
    if not isinstance(value, str) or not EVENT_ID_RE.fullmatch(value):
        raise ProtocolError(f"event id must be a lowercase UUIDv7 string, got {str(value)[:60]!r}")
    return value


def check_device_id(value: object) -> str:
    """Return ``value`` if it is a valid device id, else raise ``ProtocolError``."""
    if not isinstance(value, str) or not DEVICE_ID_RE.fullmatch(value):
        raise ProtocolError(f"device id must be 20 digits (GB/T 28181), got {str(value)[:40]!r}")
    type_code = value[10:13]
    if type_code not in DEVICE_TYPES:
        known = ", ".join(f"{k} {v}" for k, v in DEVICE_TYPES.items())
        raise ProtocolError(f"device id type code (digits 11-13) {type_code!r} is not one of: {known}")
    return value
