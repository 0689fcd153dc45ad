"""The installer's side of flashing: send a config over serial in chunks, then read it back."""

from __future__ import annotations

import queue
import struct
import time
from collections.abc import Callable

from protocols import serial as sf

from .link import SerialLink

CHUNK = sf.MAX_PAYLOAD - 4


class FlashError(Exception):
    """The device refused the config, or did not answer."""


class _Session:
    def __init__(self, port: str, baudrate: int):
        self.replies: queue.Queue[sf.Frame] = queue.Queue()
        self.link = SerialLink(port, baudrate, self.replies.put, name="flash")

    def __enter__(self) -> "_Session":
        self.link.start()
        return self

    def __exit__(self, *exc) -> None:
        self.link.stop()

    def wait(self, msg_type: sf.MsgType, deadline: float) -> sf.Frame | None:
        while time.monotonic() < deadline:
            try:
                frame = self.replies.get(timeout=0.1)
            except queue.Empty:
                continue
            if frame.type == msg_type:
                return frame
        return None


def send_config(port: str, baudrate: int, data: bytes, *, timeout: float = 30, target: int = 0) -> tuple[int, str]:
    """Send ``data`` as is (no checks here: the device checks it) and return the device's
    (code, message)."""
    with _Session(port, baudrate) as s:
        deadline = time.monotonic() + timeout
        if not s.link.connected.wait(timeout):
            raise FlashError(f"cannot open {port}")
        s.link.send(sf.MsgType.CFG_BEGIN, struct.pack(">BIH", target, len(data), sf.crc16(data)))
        for offset in range(0, len(data), CHUNK):
            s.link.send(sf.MsgType.CFG_CHUNK, struct.pack(">I", offset) + data[offset:offset + CHUNK])
        s.link.send(sf.MsgType.CFG_COMMIT)
        result = s.wait(sf.MsgType.CFG_RESULT, deadline)
        if result is None:
            raise FlashError(f"no answer from the device on {port} within {timeout:.0f} s")
        return result.payload[0], result.payload[1:].decode("utf-8", "replace")


def read_config(port: str, baudrate: int, *, timeout: float = 30, target: int = 0) -> bytes:
    """Read the device's active config back."""
    with _Session(port, baudrate) as s:
        deadline = time.monotonic() + timeout
        out = bytearray()
        total = None
        while total is None or len(out) < total:
            s.link.send(sf.MsgType.CFG_READ, struct.pack(">BIB", target, len(out), 240))
            reply = s.wait(sf.MsgType.CFG_DATA, min(deadline, time.monotonic() + 1.0))
            if reply is None:
                if time.monotonic() >= deadline:
                    raise FlashError(f"the device on {port} did not answer the read-back")
                continue
            offset, total = struct.unpack(">II", reply.payload[:8])
            if offset == len(out):
                out += reply.payload[8:]
        return bytes(out)


def port_problem(port: str) -> str | None:
    """Why ``port`` cannot be a serial port on this machine (said at once, not after the
    timeout), or None. URLs pyserial opens itself (socket://, rfc2217://, loop://) are taken."""
    import os
    if "://" in port:
        return None
    if os.path.exists(port):
        return None if os.access(port, os.R_OK | os.W_OK) else f"{port}: no permission (add the user to group dialout)"
    from serial.tools import list_ports
    found = sorted(p.device for p in list_ports.comports())
    return f"no serial port {port}; this machine has: {', '.join(found) if found else 'none'}"


def flash_config(port: str, baudrate: int, data: bytes, *, timeout: float = 60, target: int = 0,
                 progress: Callable[[str], None] = lambda m: None) -> None:
    progress(f"sending {len(data)} bytes to {port}")
    code, message = send_config(port, baudrate, data, timeout=timeout, target=target)
    if code != 0:
        raise FlashError(f"the device refused the config: {message}")
    progress(f"device: {message}; reading back")
    back = read_config(port, baudrate, timeout=timeout, target=target)
    if back != data:
        raise FlashError(f"read-back differs: sent {len(data)} bytes, read {len(back)}")
    progress("read-back matches")
