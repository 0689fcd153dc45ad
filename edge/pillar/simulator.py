"""A simulated pillar microcontroller on the master side of a pty pair.

The agent opens the slave side (reached through a stable symlink, like a udev name) as if
it were the real MCU's USB serial port. The simulator speaks the same frames, acks and
resends as the real firmware: button, tamper, heartbeat out; LED, siren, strobe, volume in.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from pathlib import Path

from protocols import serial as sf

from protocols.deviceconfig import McuParams, parse_mcu_params
from .provision import TARGET_MCU, ConfigReceiver, check_document
from .link import SerialLink

logger = logging.getLogger(__name__)

PRESS_KEEP_S = 600.0  # the firmware resends an unacked press with backoff for 10 minutes


class FdPort:
    """The few pyserial calls SerialLink makes, over a raw file descriptor."""

    def __init__(self, fd: int, timeout: float = 0.02):
        self.fd, self.timeout = fd, timeout

    def read(self, n: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, n)
        except OSError as exc:
            if exc.errno == errno.EIO:  # nobody has the slave side open right now
                time.sleep(self.timeout)
                return b""
            raise

    @property
    def in_waiting(self) -> int:
        buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def write(self, data: bytes) -> int:
        return os.write(self.fd, data)

    def close(self) -> None:
        pass  # the simulator owns the fd


class PillarSim:
    def __init__(self, link: str | Path, *, heartbeat_s: float = 1.0):
        self.link = Path(link)
        self.heartbeat_s = heartbeat_s
        self.heartbeats = threading.Event()
        self.heartbeats.set()
        self.received: list[tuple[float, sf.MsgType, bytes]] = []
        self.led: sf.Led = sf.Led.IDLE
        self.params = McuParams()
        self._params_doc = b"# defaults\n"
        self._last_press = -1e9
        self.config = ConfigReceiver(
            TARGET_MCU, lambda t, p: self._send(t, p), store=self._store_params, load=lambda: self._params_doc,
            check=lambda data: check_document(data, lambda text: parse_mcu_params(text, "<mcu params>")))
        self._t0 = time.monotonic()
        self._fds: tuple[int, int] | None = None
        self._link_obj: SerialLink | None = None
        self._stop = threading.Event()
        self._hb_thread: threading.Thread | None = None

    # --- the port ---------------------------------------------------------------------

    def plug(self) -> str:
        """Make a new pty pair and point the link at its slave side."""
        master, slave = os.openpty()
        tty.setraw(slave)
        self._fds = (master, slave)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.link)
        self._link_obj = SerialLink(str(self.link), 0, self._on_frame, name="pillar-sim",
                                    opener=lambda: FdPort(master))
        self._link_obj.start()
        return os.ttyname(slave)

    def unplug(self) -> None:
        """The USB cable is pulled: the port goes away."""
        if self._link_obj:
            self._link_obj.stop()
            self._link_obj = None
        self.link.unlink(missing_ok=True)
        if self._fds:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    def start(self) -> str:
        path = self.plug()
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="pillar-sim-hb", daemon=True)
        self._hb_thread.start()
        return path

    def stop(self) -> None:
        self._stop.set()
        if self._hb_thread:
            self._hb_thread.join(timeout=5)
        self.unplug()

    # --- what the MCU does ------------------------------------------------------------

    def tick(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def _send(self, msg_type: sf.MsgType, payload: bytes) -> None:
        if self._link_obj is None:
            raise RuntimeError("the pillar is unplugged")
        self._link_obj.send(msg_type, payload)

    def press(self) -> None:
        now = time.monotonic()
        if (now - self._last_press) * 1000 < self.params.debounce_ms:
            return  # contact bounce
        self._last_press = now
        # the firmware keeps a press until the agent acks it (it acks once the alarm is stored)
        if self._link_obj is None:
            raise RuntimeError("the pillar is unplugged")
        self._link_obj.send(sf.MsgType.BUTTON, sf.button(True, self.tick()), keep_for_s=PRESS_KEEP_S)

    def release(self) -> None:
        self._send(sf.MsgType.BUTTON, sf.button(False, self.tick()))

    def click(self) -> None:
        self.press()
        self.release()

    def tamper(self, door_open: bool) -> None:
        self._send(sf.MsgType.TAMPER, bytes((int(door_open),)))

    def write_raw(self, data: bytes) -> None:
        """Bytes straight onto the line: noise, broken frames."""
        assert self._fds is not None
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self._fds[0]], [], 1.0)
            if ready:
                n = os.write(self._fds[0], view[:4096])
                view = view[n:]

    @property
    def counters(self) -> dict[str, int]:
        return self._link_obj.counters_all() if self._link_obj else {}

    def _store_params(self, data: bytes) -> None:
        self.params = parse_mcu_params(data.decode(), "<mcu params>")
        self._params_doc = data
        self.heartbeat_s = self.params.heartbeat_s

    def _on_frame(self, frame: sf.Frame) -> None:
        self.received.append((time.monotonic(), frame.type, frame.payload))
        if self.config.handle(frame):
            return
        if frame.type == sf.MsgType.LED:
            self.led = sf.Led(frame.payload[0])
        logger.info("pillar-sim: %s %s", frame.type.name, frame.payload.hex())

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.heartbeats.is_set() and self._link_obj is not None:
                self._send(sf.MsgType.HEARTBEAT, sf.heartbeat(self.tick()))
