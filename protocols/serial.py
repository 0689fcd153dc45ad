"""Serial frame codec between the edge agent and a pillar's microcontroller (and the
installer's flasher). Pure: bytes in, frames out.

Frame::

    A5 5A | len u8 | seq u8 | type u8 | payload[len] | crc16 u16 (big-endian)

``len`` counts the payload only (0..250). The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init
0xFFFF) over len, seq, type and payload. Every frame but ACK is acknowledged by an ACK
frame carrying its seq; see protocols/README.md for the message layouts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from . import ProtocolError

SOF = b"\xa5\x5a"
MAX_PAYLOAD = 250
HEADER = 5  # SOF(2) len seq type
OVERHEAD = HEADER + 2


class MsgType(IntEnum):
    ACK = 0x01
    BUTTON = 0x10      # MCU -> agent: state u8 (1 pressed, 0 released), tick u32 (ms)
    TAMPER = 0x11      # MCU -> agent: state u8 (1 door open, 0 closed)
    HEARTBEAT = 0x12   # MCU -> agent: tick u32 (ms), firmware major u8, minor u8
    SIREN = 0x20       # agent -> MCU: on u8, duration_s u16
    STROBE = 0x21      # agent -> MCU: on u8
    LED = 0x22         # agent -> MCU: state u8 (see Led)
    VOLUME = 0x23      # agent -> MCU: percent u8 (0..100)
    CFG_BEGIN = 0x30   # flasher -> device: target u8, total u32, crc16 u16
    CFG_CHUNK = 0x31   # flasher -> device: offset u32, data
    CFG_COMMIT = 0x32  # flasher -> device: (empty)
    CFG_READ = 0x33    # flasher -> device: target u8, offset u32, length u8
    CFG_DATA = 0x34    # device -> flasher: offset u32, total u32, data
    CFG_RESULT = 0x35  # device -> flasher: code u8 (0 ok), message (UTF-8)


class Led(IntEnum):
    IDLE = 0
    ALARM_SENT = 1
    ALARM_RECEIVED = 2
    HELP_COMING = 3


#: fixed payload sizes; types not listed have a variable payload with this minimum
_FIXED = {MsgType.ACK: 1, MsgType.BUTTON: 5, MsgType.TAMPER: 1, MsgType.HEARTBEAT: 6, MsgType.SIREN: 3,
          MsgType.STROBE: 1, MsgType.LED: 1, MsgType.VOLUME: 1, MsgType.CFG_BEGIN: 7, MsgType.CFG_COMMIT: 0,
          MsgType.CFG_READ: 6}
_MIN = {MsgType.CFG_CHUNK: 4, MsgType.CFG_DATA: 8, MsgType.CFG_RESULT: 1}


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


@dataclass(frozen=True)
class Frame:
    seq: int
    type: MsgType
    payload: bytes = b""


def check_payload(msg_type: int, payload: bytes) -> MsgType:
    try:
        t = MsgType(msg_type)
    except ValueError:
        raise ProtocolError(f"unknown frame type 0x{msg_type:02x}") from None
    if t in _FIXED and len(payload) != _FIXED[t]:
        raise ProtocolError(f"{t.name} payload must be {_FIXED[t]} bytes, got {len(payload)}")
    if t in _MIN and len(payload) < _MIN[t]:
        raise ProtocolError(f"{t.name} payload must be at least {_MIN[t]} bytes, got {len(payload)}")
    return t


def encode(frame: Frame) -> bytes:
    if not 0 <= frame.seq <= 255:
        raise ProtocolError("seq must be 0..255")
    if len(frame.payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    check_payload(frame.type, frame.payload)
    body = bytes((len(frame.payload), frame.seq, frame.type)) + frame.payload
    return SOF + body + struct.pack(">H", crc16(body))


def _valid_frame_at_or_after(buf: bytearray, start: int) -> int | None:
    """Offset of the first complete frame with a good CRC at or after ``start``, if any."""
    pos = buf.find(SOF, start)
    while pos >= 0 and len(buf) - pos >= OVERHEAD:
        length = buf[pos + 2]
        end = pos + OVERHEAD + length
        if length <= MAX_PAYLOAD and end <= len(buf):
            (crc,) = struct.unpack(">H", buf[end - 2:end])
            if crc == crc16(bytes(buf[pos + 2:end - 2])):
                return pos
        pos = buf.find(SOF, pos + 1)
    return None


class Decoder:
    """Streaming decoder: feed it bytes as they come, get whole frames back. Noise, bad CRCs,
    unknown types and frames cut short are counted and skipped; it resynchronises on the next
    start marker."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.counters = {"frames": 0, "bad_crc": 0, "bad_frame": 0, "noise_bytes": 0, "truncated": 0}

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        while True:
            start = buf.find(SOF)
            if start < 0:
                keep = 1 if buf[-1:] == SOF[:1] else 0
                self.counters["noise_bytes"] += len(buf) - keep
                del buf[:len(buf) - keep]
                break
            if start:
                self.counters["noise_bytes"] += start
                del buf[:start]
            if len(buf) < HEADER:
                break
            length = buf[2]
            if length > MAX_PAYLOAD:
                self.counters["bad_frame"] += 1
                del buf[:1]
                continue
            total = OVERHEAD + length
            if len(buf) < total:
                # a start marker in noise with a made-up length would hold back every real frame
                # behind it until that many bytes came: a whole valid frame further on wins
                later = _valid_frame_at_or_after(buf, 1)
                if later is None:
                    break
                self.counters["noise_bytes"] += later
                del buf[:later]
                continue
            body = bytes(buf[2:HEADER + length])
            (crc,) = struct.unpack(">H", buf[HEADER + length:total])
            if crc != crc16(body):
                self.counters["bad_crc"] += 1
                del buf[:1]
                continue
            try:
                msg_type = check_payload(body[2], body[3:])
            except ProtocolError:
                self.counters["bad_frame"] += 1
                del buf[:total]
                continue
            del buf[:total]
            self.counters["frames"] += 1
            out.append(Frame(seq=body[1], type=msg_type, payload=body[3:]))
        return out

    def drop_partial(self) -> None:
        """The line went quiet in the middle of a frame: it was cut short."""
        if self._buf:
            self.counters["truncated"] += 1
            self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)


# --- payload helpers ---------------------------------------------------------------------------

def button(pressed: bool, tick_ms: int) -> bytes:
    return struct.pack(">BI", int(pressed), tick_ms & 0xFFFFFFFF)


def parse_button(payload: bytes) -> tuple[bool, int]:
    state, tick = struct.unpack(">BI", payload)
    return bool(state), tick


def heartbeat(tick_ms: int, fw: tuple[int, int] = (1, 0)) -> bytes:
    return struct.pack(">IBB", tick_ms & 0xFFFFFFFF, *fw)


def parse_heartbeat(payload: bytes) -> tuple[int, tuple[int, int]]:
    tick, major, minor = struct.unpack(">IBB", payload)
    return tick, (major, minor)


def siren(on: bool, duration_s: int) -> bytes:
    return struct.pack(">BH", int(on), max(0, min(duration_s, 0xFFFF)))
