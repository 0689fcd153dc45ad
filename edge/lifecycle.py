"""Start components in order, stop them in reverse, supervise them in between."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Protocol

logger = logging.getLogger(__name__)


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def alive(self) -> bool: ...


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
            try:
                comp.stop()
            except Exception:
                logger.exception("stopping %s failed", name)

    def dead(self) -> list[str]:
        return [name for name, comp in self._started if not comp.alive()]

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            logger.info("received %s; stopping", signal.Signals(signum).name)
            self.stopping.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
