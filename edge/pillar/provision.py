"""Provisioning mode: the agent takes a new config over its USB serial console.

The installer's ``xl-edge flash`` sends CFG_BEGIN (size, CRC), CFG_CHUNKs and CFG_COMMIT. On
commit the device checks the CRC and runs the same checks as ``xl-edge check-config``; a bad
config is refused with the reasons and the running one stays. A good one is written
atomically (temp file, fsync, rename, fsync of the folder), the previous one is kept as
``<name>.prev``, and the agent restarts into it. CFG_READ reads the active config back.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

from protocols import serial as sf
from protocols.configdoc import MAX_CONFIG_BYTES, ConfigError

from protocols.deviceconfig import parse_config
from .link import SerialLink

logger = logging.getLogger(__name__)

TARGET_AGENT = 0
TARGET_MCU = 1


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves either the old or the new file,
    keeping the old one as ``<name>.prev``."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if path.exists():
        prev = path.with_name(path.name + ".prev")
        prev.write_bytes(path.read_bytes())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ConfigReceiver:
    """Takes one config document over CFG_* frames for one target: assembles the chunks,
    checks size and CRC, asks ``check`` (returns an error message or None), then ``store``;
    answers CFG_READ from ``load``. Used by the agent (target 0) and the MCU (target 1)."""

    def __init__(self, target: int, send: Callable[[sf.MsgType, bytes], object], *,
                 check: Callable[[bytes], str | None], store: Callable[[bytes], None], load: Callable[[], bytes],
                 on_stored: Callable[[], None] = lambda: None):
        self.target = target
        self.on_stored = on_stored
        self.send, self.check, self.store, self.load = send, check, store, load
        self.counters = {"accepted": 0, "refused": 0}
        self._buf = bytearray()
        self._expect: tuple[int, int] | None = None  # total, crc
        self._error: str | None = None

    def handle(self, frame: sf.Frame) -> bool:
        """Handle a CFG_* frame; False if it is not one."""
        p = frame.payload
        if frame.type == sf.MsgType.CFG_BEGIN:
            target, total, crc = struct.unpack(">BIH", p)
            self._buf.clear()
            self._error = None
            if target != self.target:
                self._error = f"target {target} is not served on this port (it serves {self.target})"
            elif total > MAX_CONFIG_BYTES:
                self._error = f"config of {total} bytes is larger than {MAX_CONFIG_BYTES}"
            self._expect = (total, crc)
        elif frame.type == sf.MsgType.CFG_CHUNK:
            (offset,) = struct.unpack(">I", p[:4])
            if offset == len(self._buf):
                self._buf += p[4:]
            elif offset + len(p) - 4 > len(self._buf) and self._error is None:
                self._error = f"chunk at {offset} but {len(self._buf)} bytes received"
        elif frame.type == sf.MsgType.CFG_COMMIT:
            self._commit()
        elif frame.type == sf.MsgType.CFG_READ:
            target, offset, length = struct.unpack(">BIB", p)
            data = self.load() if target == self.target else b""
            self.send(sf.MsgType.CFG_DATA, struct.pack(">II", offset, len(data)) +
                      data[offset:offset + min(length, sf.MAX_PAYLOAD - 8)])
        else:
            return False
        return True

    def _result(self, code: int, message: str) -> None:
        self.send(sf.MsgType.CFG_RESULT, bytes((code,)) + message.encode()[:240])

    def _refuse(self, message: str) -> None:
        self.counters["refused"] += 1
        logger.warning("provisioning: config refused: %s", message)
        self._result(1, message)

    def _commit(self) -> None:
        if self._expect is None:
            return self._refuse("CFG_COMMIT without CFG_BEGIN")
        total, crc = self._expect
        data = bytes(self._buf)
        self._expect = None
        if self._error:
            return self._refuse(self._error)
        if len(data) != total or sf.crc16(data) != crc:
            return self._refuse(f"received {len(data)} of {total} bytes or a bad CRC")
        error = self.check(data)
        if error:
            return self._refuse(error)
        self.store(data)
        self.counters["accepted"] += 1
        self._result(0, "ok")
        self.on_stored()


def check_document(data: bytes, parse: Callable[[str], object]) -> str | None:
    """The same checks as check-config, as one message for CFG_RESULT (None if valid)."""
    try:
        parse(data.decode("utf-8"))
    except UnicodeDecodeError:
        return "the config is not UTF-8"
    except ConfigError as exc:
        return "; ".join(f"line {i.line}: {str(i).split(': ', 1)[-1]}" for i in exc.issues)
    return None


class ProvisioningServer:
    def __init__(self, port: str, baudrate: int, config_path: Path, on_new_config: Callable[[], None]):
        self.config_path = config_path
        self.on_new_config = on_new_config
        self.link = SerialLink(port, baudrate, self._on_frame, name="provisioning")
        self.receiver = ConfigReceiver(
            TARGET_AGENT, self.link.send, store=self._store, load=config_path.read_bytes, on_stored=on_new_config,
            check=lambda data: check_document(data, lambda text: parse_config(text, str(config_path))))

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def alive(self) -> bool:
        return self.link.alive()

    def _on_frame(self, frame: sf.Frame) -> None:
        self.receiver.handle(frame)

    def _store(self, data: bytes) -> None:
        write_atomically(self.config_path, data)
        logger.info("provisioning: new config written to %s (%d bytes); restarting", self.config_path, len(data))
