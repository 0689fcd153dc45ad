"""Start components in order, stop them in reverse, supervise them in between, and tell
systemd (``Type=notify``) about it: READY once started, WATCHDOG while every component is
alive, STOPPING on the way out. Shared by the edge agent and the hub."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

# Both daemons run a latency-critical thread (the alarm lane, the pillar link) beside CPU-bound
# ones (ingest batches, video analysis). A thread that returns from a blocking call (a database
# write, a socket read) waits for the GIL until the running thread's switch interval ends:
# CPython's default 5 ms, paid again after every call, adds tens of milliseconds to an alarm.
SWITCH_INTERVAL_S = 0.001

logger = logging.getLogger(__name__)


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def alive(self) -> bool: ...


class Periodic:
    """A component that runs ``work()`` every ``every_s`` seconds on a thread of its own (first
    after one interval, or at once with ``first_now``), and ``last()`` once when stopped. A round
    that raises is logged and the next one comes as usual."""

    def __init__(self, name: str, every_s: float, work: Callable[[], object], *, first_now: bool = False,
                 last: Callable[[], object] | None = None):
        self.name, self.every_s, self.work, self.first_now, self.last = name, every_s, work, first_now, last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _round(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            logger.exception("%s failed; trying again in %.0f s", self.name, self.every_s)

    def _run(self) -> None:
        if self.first_now:
            self._round(self.work)
        while not self._stop.wait(self.every_s):
            self._round(self.work)
        if self.last is not None:
            self._round(self.last)


class LifecycleError(Exception):
    """A component died or reported a fatal condition."""


def sd_notify(state: str) -> bool:
    """Send one datagram to $NOTIFY_SOCKET (the sd_notify protocol); False if there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        logger.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC, as systemd recommends; None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.05)
    except ValueError:
        return None


class Lifecycle:
    def __init__(self, components: list[tuple[str, Component]]):
        self.components = components
        self._started: list[tuple[str, Component]] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        for name, comp in self.components:
            logger.debug("starting %s", name)
            comp.start()
            self._started.append((name, comp))

    def stop(self) -> None:
        self.stopping.set()
        while self._started:
            name, comp = self._started.pop()
            logger.debug("stopping %s", name)
            t0 = time.monotonic()
            try:
                comp.stop()
            except Exception:
                logger.exception("stopping %s failed", name)
            took = time.monotonic() - t0
            if took > 0.5:
                logger.warning("stopping %s took %.1f s", name, took)

    def dead(self) -> list[str]:
        return [name for name, comp in self._started if not comp.alive()]

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            logger.info("received %s; stopping", signal.Signals(signum).name)
            self.stopping.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, fatal: Callable[[], str | None] = lambda: None) -> None:
        """Start everything, supervise until SIGTERM/SIGINT, stop everything. Raises
        ``LifecycleError`` if ``fatal()`` returns a reason or a component dies."""
        self.install_signal_handlers()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self.start()
            sd_notify("READY=1\nSTATUS=running")
            interval = watchdog_interval()
            next_ping = time.monotonic()
            while not self.stopping.wait(min(1.0, interval or 1.0)):
                reason = fatal()
                if reason:
                    raise LifecycleError(reason)
                dead = self.dead()
                if dead:
                    raise LifecycleError(f"component(s) stopped unexpectedly: {', '.join(dead)}")
                if interval and time.monotonic() >= next_ping:
                    sd_notify("WATCHDOG=1")  # only after checking that every component is alive
                    next_ping = time.monotonic() + interval
        finally:
            sd_notify("STOPPING=1")
            self.stop()
