"""The one owner of alarms on the device.

Each alarm (a panic-button press, stored as an ``alarm`` event) has a state that only moves
forward: pressed (stored, in the outbox) → sent (published) → received (the hub stored it) →
help_coming (the centre accepted it, or the village monitor acknowledged it on the LAN page) →
closed (its ticket was closed). The states live in the store (``Store.advance_alarms``), so a
restart keeps them. The pillar's LED shows the state of the newest alarm and is written only
from here, under one lock: a late command for an older alarm can change that alarm's row but
never the LED of a newer one.

Hub commands carry an id; each id is applied once (recorded in the same transaction as the
state change), and acked whether it was new or a resend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from protocols import serial as sf
from protocols.messages import Command

from .store import ALARM_STATES, AlarmRow, Store

logger = logging.getLogger(__name__)

LED_FOR_STATE = {"pressed": sf.Led.ALARM_SENT, "sent": sf.Led.ALARM_SENT, "received": sf.Led.ALARM_RECEIVED,
                 "help_coming": sf.Led.HELP_COMING, "closed": sf.Led.IDLE}
STATE_FOR_COMMAND = {"help_coming": "help_coming", "alarm_closed": "closed"}


class AlarmBook:
    def __init__(self, store: Store, *, window_s: float = 1800.0):
        self.store = store
        self.window_s = window_s
        self.counters = {"commands": 0, "duplicate_commands": 0, "unknown_alarm_commands": 0}
        self._lock = threading.Lock()
        self._led_sink: Callable[[sf.Led], None] | None = None
        self.led = sf.Led.IDLE

    # --- the LED ------------------------------------------------------------------------------

    def attach_led(self, sink: Callable[[sf.Led], None]) -> None:
        """The pillar: called with the LED state whenever it may have changed (in order)."""
        self._led_sink = sink
        self.refresh_led()

    def refresh_led(self) -> sf.Led:
        with self._lock:
            newest = self.store.alarms(limit=1)
            self.led = LED_FOR_STATE[newest[0].state] if newest else sf.Led.IDLE
            if self._led_sink is not None:
                self._led_sink(self.led)
            return self.led

    # --- state changes ------------------------------------------------------------------------

    def _advance(self, ids: Iterable[str], state: str, **kw) -> list[str] | None:
        moved = self.store.advance_alarms(ids, state, **kw)
        if moved:
            logger.info("alarm(s) %s → %s", ", ".join(moved), state)
            self.refresh_led()
        return moved

    def _known(self, ids: Iterable[str]) -> list[str]:
        ids = list(ids)
        if not ids:
            return []
        return [r.id for r in self.store.alarms(ids=ids, limit=len(ids))]

    def pressed(self, alarm_id: str) -> None:
        """A new alarm was stored (its row was written with the event)."""
        self.refresh_led()

    def sent(self, event_ids: list[str]) -> None:
        """These urgent events were published to the broker."""
        known = self._known(event_ids)
        if known:
            self._advance(known, "sent")

    def received(self, event_ids: list[str]) -> None:
        """The hub acked these events."""
        known = self._known(event_ids)
        if known:
            self._advance(known, "received")

    def acknowledge(self, alarm_ids: Iterable[str], by: str) -> list[str]:
        """A village monitor acknowledged alarms on the LAN page: help is coming."""
        return self._advance(alarm_ids, "help_coming", by=by, via="lan") or []

    def apply(self, cmd: Command) -> bool:
        """Apply a hub command; True if it was applied now, False if it was a resend of one applied
        before or names an alarm this device does not have. Raises ``StoreError`` if the store
        cannot take it (the command is then not acked, and the hub sends it again)."""
        state = STATE_FOR_COMMAND.get(cmd.command)
        if state is None or cmd.alarm_id is None:
            return False
        self.counters["commands"] += 1
        if not self._known([cmd.alarm_id]):
            self.counters["unknown_alarm_commands"] += 1
            logger.warning("command %s for alarm %s, which this device does not have", cmd.command, cmd.alarm_id)
            return False
        moved = self._advance([cmd.alarm_id], state, by=cmd.by, via="hub", command_id=cmd.id, command=cmd.command)
        if moved is None:
            self.counters["duplicate_commands"] += 1
            return False
        return True

    # --- reads --------------------------------------------------------------------------------

    def recent(self) -> list[AlarmRow]:
        """Alarms of the last ``window_s`` that are not closed, newest first (the LAN banners)."""
        return [a for a in self.store.alarms(since=time.time() - self.window_s) if a.state != "closed"]

    def open_ids(self) -> list[str]:
        """Alarms on the LAN page still waiting for someone to acknowledge them."""
        waiting = ALARM_STATES.index("help_coming")
        return [a.id for a in self.recent() if ALARM_STATES.index(a.state) < waiting]
