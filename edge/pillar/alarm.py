"""The alarm pillar: panic button, tamper switch and MCU health, over the serial link.

A press is the most urgent path in the system: it is written and fsynced as an ``alarm``
event (urgent lane, so it goes out before any backlog), then the LED shows "alarm sent" and,
if configured, the siren sounds. More presses within ``merge_window_s`` add to the same alarm
(``alarm_update`` events with the running count). The alarm's state from then on (received by
the hub, help coming, closed) and the LED belong to ``edge.alarms.AlarmBook``; the pillar only
puts on the wire what the book tells it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from protocols import serial as sf
from protocols.deviceconfig import PillarSection

from ..alarms import AlarmBook
from ..store import Store, StoreError
from .link import SerialLink

logger = logging.getLogger(__name__)

PRESS_MEMORY_S = 600.0  # as long as the firmware keeps resending an unacked press


class Pillar:
    def __init__(self, cfg: PillarSection, store: Store, book: AlarmBook, *, port: str | None = None):
        self.cfg = cfg
        self.store = store
        self.book = book
        self.port = port or cfg.port
        self.link = SerialLink(self.port, cfg.baudrate, self._on_frame, name="pillar", on_state=self._on_port)
        self.counters = {"presses": 0, "alarms": 0, "tamper": 0, "mcu_lost": 0, "repeated_presses": 0}
        # MCU ticks of the presses stored lately: the firmware resends a press until it is acked,
        # and an ack lost in a restart must not make a second alarm of the same press
        self._press_ticks: collections.deque[int] = collections.deque(maxlen=256)
        self.mcu_online = False
        self.on_alarm: Callable[[str], None] | None = None  # a new alarm's id (its clip is made and sent)
        self.led = sf.Led.IDLE
        self._lock = threading.Lock()
        self._led_lock = threading.Lock()  # the LED state and its frame go out together, in order
        self._alarm_id: str | None = None
        self._alarm_started = 0.0
        self._presses = 0
        self._last_heartbeat: float | None = None
        self._mcu_lost_reported = False
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_mcu, name="pillar-watch", daemon=True)

    def start(self) -> None:
        since = time.time() - PRESS_MEMORY_S
        for type_ in ("alarm", "alarm_update"):
            for ev in reversed(self.store.events(type=type_, since=since, limit=256)):
                if isinstance(ev["data"].get("mcu_tick"), int):
                    self._press_ticks.append(ev["data"]["mcu_tick"])
        self.book.attach_led(self.show_led)
        self.link.start()
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        self._watch.join(timeout=5)
        self.link.stop()

    def alive(self) -> bool:
        return self.link.alive() and self._watch.is_alive()

    # --- from the MCU (serial owner thread) ---------------------------------------------

    def _on_port(self, up: bool) -> None:
        if up:
            self.link.send(sf.MsgType.VOLUME, bytes((self.cfg.volume,)))
            with self._led_lock:
                self.link.send(sf.MsgType.LED, bytes((self.led,)))

    def _on_frame(self, frame: sf.Frame) -> None:
        if frame.type == sf.MsgType.BUTTON:
            pressed, tick = sf.parse_button(frame.payload)
            if pressed:
                self._press(tick)
        elif frame.type == sf.MsgType.TAMPER:
            self.counters["tamper"] += 1
            self._record("tamper", {"door": "open" if frame.payload[0] else "closed"})
        elif frame.type == sf.MsgType.HEARTBEAT:
            tick, fw = sf.parse_heartbeat(frame.payload)
            with self._lock:
                self._last_heartbeat = time.monotonic()
                came_back = self._mcu_lost_reported
                self._mcu_lost_reported = False
                self.mcu_online = True
            if came_back:
                self._record("mcu_restored", {"firmware": f"{fw[0]}.{fw[1]}"})

    def _press(self, tick: int) -> None:
        """Raises ``StoreError`` if the press could not be stored: the link then leaves the frame
        unacked and the firmware sends it again."""
        if tick in self._press_ticks:
            self.counters["repeated_presses"] += 1
            return
        now = time.monotonic()
        self.counters["presses"] += 1
        with self._lock:
            merge = self._alarm_id is not None and now - self._alarm_started <= self.cfg.merge_window_s
            if merge:
                self._presses += 1
                alarm_id, presses = self._alarm_id, self._presses
        if merge:
            self.store.add("alarm_update", {"alarm_id": alarm_id, "presses": presses, "mcu_tick": tick})
            self._press_ticks.append(tick)
            return
        ev = self.store.add("alarm", {"source": "button", "presses": 1, "mcu_tick": tick})
        self._press_ticks.append(tick)
        with self._lock:
            self._alarm_id, self._alarm_started, self._presses = ev.id, now, 1
        self.counters["alarms"] += 1
        self.book.pressed(ev.id)
        if self.on_alarm is not None:  # the pre-alarm clip, sent to the hub unasked
            try:
                self.on_alarm(ev.id)
            except Exception:  # the clip is extra: the alarm itself is stored and on its way
                logger.exception("pre-alarm clip of %s not started", ev.id)
        if self.cfg.strobe_on_press:
            self.link.send(sf.MsgType.STROBE, b"\x01")
        if self.cfg.siren_on_press:
            self.link.send(sf.MsgType.SIREN, sf.siren(True, self.cfg.siren_duration_s))

    def _record(self, type: str, data: dict):
        try:
            return self.store.add(type, data)
        except StoreError as exc:  # never silent: the LED stays idle so the caller can see it failed
            logger.error("pillar: %s not stored: %s", type, exc)
            return None

    def show_led(self, state: sf.Led) -> None:
        """The LED state the alarm book decided (the book is its only caller)."""
        with self._led_lock:
            if state == self.led:
                return
            self.led = state
            self.link.send(sf.MsgType.LED, bytes((state,)))

    # --- MCU silence --------------------------------------------------------------------

    def _watch_mcu(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.5):
            with self._lock:
                last = self._last_heartbeat if self._last_heartbeat is not None else started
                silent = time.monotonic() - last > self.cfg.mcu_timeout_s and not self._mcu_lost_reported
                if silent:
                    self._mcu_lost_reported = True
                    self.mcu_online = False
            if silent:
                self.counters["mcu_lost"] += 1
                self._record("mcu_lost", {"silent_s": self.cfg.mcu_timeout_s, "port": self.port})
