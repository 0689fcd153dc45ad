"""Sample event generator for demos, until cameras are set up.

It goes through the same path as real events: ``Store.add_many`` (fsynced, queued in the
outbox), then the sync engine drains it to the hub.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from protocols.deviceconfig import DemoSection
from .store import NewEvent, Store, StoreError
from .sync import FpsMeters

logger = logging.getLogger(__name__)

FRAME_RATE = 25  # frames/s reported for each simulated camera


class DemoGenerator:
    def __init__(self, cfg: DemoSection, store: Store, meters: FpsMeters, *, seed: int | None = None):
        self.cfg = cfg
        self.store = store
        self.meters = meters
        self.generated = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-generator", daemon=True)
        for cam in cfg.cameras:
            meters.add_camera(cam)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._thread.is_alive() or self.done

    @property
    def done(self) -> bool:
        return bool(self.cfg.count) and self.generated >= self.cfg.count

    def _sample(self) -> NewEvent:
        cam = self._rng.choice(self.cfg.cameras)
        if self._rng.random() < 0.15:
            return NewEvent("face", {"camera": cam, "score": round(self._rng.uniform(0.6, 0.99), 3),
                                     "box": [self._rng.randrange(0, 1800), self._rng.randrange(0, 1000), 48, 60]})
        return NewEvent("motion", {"camera": cam, "zones": ["gate"] if self._rng.random() < 0.5 else [],
                                   "peak_area": round(self._rng.uniform(0.001, 0.3), 4)})

    def _run(self) -> None:
        start = time.monotonic()
        next_alarm = start + self.cfg.alarm_every_s if self.cfg.alarm_every_s else None
        last_frames = start
        while not self._stop.is_set() and not self.done:
            now = time.monotonic()
            due = int((now - start) * self.cfg.rate_per_s) - self.generated
            if self.cfg.count:
                due = min(due, self.cfg.count - self.generated)
            batch = [self._sample() for _ in range(max(due, 0))]
            if next_alarm is not None and now >= next_alarm:
                next_alarm += self.cfg.alarm_every_s
                batch.append(NewEvent("alarm", {"source": "demo", "presses": 1}))
            frames = int((now - last_frames) * FRAME_RATE)
            if frames:
                last_frames += frames / FRAME_RATE
                for cam in self.cfg.cameras:
                    self.meters.tick(cam, frames)
            if batch:
                try:
                    self.store.add_many(batch)
                    self.generated += len(batch)
                except StoreError as exc:
                    logger.error("demo events not stored: %s", exc)
            self._stop.wait(min(0.05, 1 / self.cfg.rate_per_s))
        logger.info("demo generator stopped after %d events", self.generated)
