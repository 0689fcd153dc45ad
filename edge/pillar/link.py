"""A reliable frame link over a serial port (pyserial), owned by one thread.

The owner thread opens the port, reads and decodes frames, hands each to ``on_frame`` and acks
it once handled (a handler that raises leaves it unacked, so the sender tries again: a press
is acked only once it is stored), writes what other threads queued with ``send`` and resends a
frame until it is acked: ``RETRIES`` times every 150 ms, or, for a frame sent with
``keep_for_s``, with backoff up to 2 s for that long (the firmware keeps a press that way, so a
press while the agent restarts is not lost). If the port disappears (USB unplugged) it is
reopened with backoff; bad frames are counted, never fatal.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable

import serial

from protocols import serial as sf

logger = logging.getLogger(__name__)

ACK_TIMEOUT_S = 0.15
RETRIES = 5
KEEP_BACKOFF_MAX_S = 2.0
QUIET_GAP_S = 0.1   # a frame cut off by this long a pause is dropped
DEDUP_S = 3.0       # a resent frame (same seq and bytes) within this window is not handed on again


class SerialLink:
    def __init__(self, port: str, baudrate: int, on_frame: Callable[[sf.Frame], None], *, name: str = "serial",
                 on_state: Callable[[bool], None] | None = None, opener: Callable[[], object] | None = None):
        self.port, self.baudrate = port, baudrate
        self._open = opener or (lambda: serial.Serial(self.port, self.baudrate, timeout=0.02, write_timeout=1))
        self.on_frame = on_frame
        self.on_state = on_state
        self.name = name
        self.decoder = sf.Decoder()
        self.counters = {"opens": 0, "disconnects": 0, "sent": 0, "resent": 0, "unacked": 0, "duplicates": 0,
                         "not_taken": 0}
        self._outq: queue.SimpleQueue[tuple[int, bytes, float | None]] = queue.SimpleQueue()
        # seq -> (frame bytes, tries, next deadline, give up at: None for RETRIES tries)
        self._pending: dict[int, tuple[bytes, int, float, float | None]] = {}
        self._seen: deque[tuple[float, int, int, bytes]] = deque()
        self._seq = random.randrange(256)  # a fresh session does not look like a resend of the last one
        self._seq_lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def send(self, msg_type: sf.MsgType, payload: bytes = b"", *, keep_for_s: float | None = None) -> int:
        """Queue a frame; the owner thread writes it and resends it until acked (``RETRIES``
        times, or with backoff for ``keep_for_s`` seconds). Returns its seq."""
        with self._seq_lock:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
        self._outq.put((seq, sf.encode(sf.Frame(seq, msg_type, payload)), keep_for_s))
        return seq

    def counters_all(self) -> dict[str, int]:
        return {**self.counters, **self.decoder.counters}

    # --- owner thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError) as exc:
                logger.debug("%s: cannot open %s: %s", self.name, self.port, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.2
            self.counters["opens"] += 1
            logger.info("%s: opened %s", self.name, self.port)
            self.connected.set()
            if self.on_state:
                self.on_state(True)
            try:
                self._serve(port)
            except (serial.SerialException, OSError) as exc:
                self.counters["disconnects"] += 1
                logger.warning("%s: lost %s (%s); reopening", self.name, self.port, exc)
            finally:
                self.connected.clear()
                self.decoder.drop_partial()
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    pass
                if self.on_state:
                    self.on_state(False)

    def _serve(self, port: serial.Serial) -> None:
        last_byte = time.monotonic()
        while not self._stop.is_set():
            data = port.read(1)  # returns as soon as a byte is there (or after the 20 ms timeout)
            if data and port.in_waiting:
                data += port.read(port.in_waiting)
            now = time.monotonic()
            if data:
                last_byte = now
                for frame in self.decoder.feed(data):
                    self._received(port, frame, now)
            elif self.decoder.pending and now - last_byte > QUIET_GAP_S:
                self.decoder.drop_partial()
            self._write_queued(port, now)
            self._resend_due(port, now)

    def _received(self, port: serial.Serial, frame: sf.Frame, now: float) -> None:
        if frame.type == sf.MsgType.ACK:
            self._pending.pop(frame.payload[0], None)
            return
        ack = sf.encode(sf.Frame(frame.seq, sf.MsgType.ACK, bytes((frame.seq,))))
        while self._seen and now - self._seen[0][0] > DEDUP_S:
            self._seen.popleft()
        key = (frame.seq, int(frame.type), frame.payload)
        if any(s[1:] == key for s in self._seen):
            self.counters["duplicates"] += 1
            port.write(ack)
            return
        try:
            self.on_frame(frame)
        except Exception:  # not taken: no ack, the sender tries again
            self.counters["not_taken"] += 1
            logger.exception("%s: handling %s failed; not acked", self.name, frame.type.name)
            return
        self._seen.append((now, *key))
        port.write(ack)

    def _write_queued(self, port: serial.Serial, now: float) -> None:
        while True:
            try:
                seq, raw, keep_for_s = self._outq.get_nowait()
            except queue.Empty:
                return
            port.write(raw)
            self.counters["sent"] += 1
            self._pending[seq] = (raw, 1, now + ACK_TIMEOUT_S, None if keep_for_s is None else now + keep_for_s)

    def _resend_due(self, port: serial.Serial, now: float) -> None:
        for seq, (raw, tries, deadline, give_up) in list(self._pending.items()):
            if now < deadline:
                continue
            if (tries >= RETRIES) if give_up is None else (now >= give_up):
                del self._pending[seq]
                self.counters["unacked"] += 1
                logger.warning("%s: frame seq %d never acked", self.name, seq)
                continue
            port.write(raw)
            self.counters["resent"] += 1
            wait = ACK_TIMEOUT_S if give_up is None else min(ACK_TIMEOUT_S * 2 ** tries, KEEP_BACKOFF_MAX_S)
            self._pending[seq] = (raw, tries + 1, now + wait, give_up)
