"""The alarm pillar: panic button, tamper switch and MCU health, over the serial link.

A press is the most urgent path in the system: it is written and fsynced as an ``alarm``
event (urgent lane, so it goes out before any backlog), then the LED shows "alarm sent" and,
if configured, the siren sounds. More presses within ``merge_window_s`` add to the same alarm
(``alarm_update`` events with the running count). When the hub's ack for the alarm comes
back the LED shows "alarm received".
"""

from __future__ import annotations

import logging
import threading
import time

from protocols import serial as sf
from protocols.messages import Command

from protocols.deviceconfig import PillarSection
from .link import SerialLink
from ..store import Store, StoreError

logger = logging.getLogger(__name__)


class Pillar:
    def __init__(self, cfg: PillarSection, store: Store, *, port: str | None = None):
        self.cfg = cfg
        self.store = store
        self.port = port or cfg.port
        self.link = SerialLink(self.port, cfg.baudrate, self._on_frame, name="pillar", on_state=self._on_port)
        self.counters = {"presses": 0, "alarms": 0, "tamper": 0, "mcu_lost": 0}
        self.mcu_online = False
        self.led = sf.Led.IDLE
        self._lock = threading.Lock()
        self._alarm_id: str | None = None
        self._alarm_started = 0.0
        self._presses = 0
        self._last_heartbeat: float | None = None
        self._mcu_lost_reported = False
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_mcu, name="pillar-watch", daemon=True)

    def start(self) -> None:
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
        now = time.monotonic()
        self.counters["presses"] += 1
        with self._lock:
            merge = self._alarm_id is not None and now - self._alarm_started <= self.cfg.merge_window_s
            if merge:
                self._presses += 1
                alarm_id, presses = self._alarm_id, self._presses
        if merge:
            self._record("alarm_update", {"alarm_id": alarm_id, "presses": presses, "mcu_tick": tick})
            return
        ev = self._record("alarm", {"source": "button", "presses": 1, "mcu_tick": tick})
        if ev is None:
            return
        with self._lock:
            self._alarm_id, self._alarm_started, self._presses = ev.id, now, 1
        self.counters["alarms"] += 1
        self._set_led(sf.Led.ALARM_SENT)
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

    def _set_led(self, state: sf.Led) -> None:
        self.led = state
        self.link.send(sf.MsgType.LED, bytes((state,)))

    # --- from the hub (sync worker thread) ----------------------------------------------

    def on_acked(self, event_ids: list[str]) -> None:
        with self._lock:
            current = self._alarm_id
        if current is not None and current in event_ids and self.led == sf.Led.ALARM_SENT:
            self._set_led(sf.Led.ALARM_RECEIVED)

    def acknowledged_locally(self) -> None:
        """A village monitor acknowledged the alarm on the LAN page: help is coming."""
        self._set_led(sf.Led.HELP_COMING)

    def on_command(self, cmd: Command) -> None:
        if cmd.command == "help_coming":
            self._set_led(sf.Led.HELP_COMING)

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
