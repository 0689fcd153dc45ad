"""``clock://WIDTHxHEIGHT@FPS``: a live test camera for latency measurements (bench/live_latency.py,
bench/hub_live.py): each frame carries the wall-clock time of its capture."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import numpy as np

from .frames import Frame, Packet, Session, SourceError

CLOCK_BITS = 48


class ClockSession(Session):
    """``clock://WIDTHxHEIGHT@FPS``: a live test camera for latency measurements. Each frame is a
    textured picture with the wall-clock time of its capture in milliseconds drawn along its top
    edge as 48 black/white blocks (most significant bit first), so a viewer can read back when
    the frame was taken."""

    def __init__(self, source: str, offset: float, first_index: int):
        m = re.fullmatch(r"clock://(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?", source)
        if not m:
            raise SourceError(f"{source}: expected clock://WIDTHxHEIGHT@FPS")
        self.width, self.height = int(m.group(1)) // 2 * 2, int(m.group(2)) // 2 * 2
        self.fps = float(m.group(3) or 25)
        yy, xx = np.mgrid[0:self.height, 0:self.width]
        luma = 110 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0)
        self.base = np.full((self.height * 3 // 2, self.width), 128, np.uint8)
        self.base[:self.height] = luma.astype(np.uint8)
        self.block = self.width // CLOCK_BITS
        self.offset, self.index = offset, first_index

    def read(self) -> Iterator[Packet | Frame]:
        import av
        start = time.monotonic()
        n = 0
        while True:
            due = start + n / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            img = self.base.copy()
            stamp = int(now * 1000)
            w = self.width
            for bit in range(CLOCK_BITS):  # block i spans [i*w/48, (i+1)*w/48): any scaling keeps it
                on = (stamp >> (CLOCK_BITS - 1 - bit)) & 1
                img[0:self.block, bit * w // CLOCK_BITS:(bit + 1) * w // CLOCK_BITS] = 235 if on else 16
            vf = av.VideoFrame.from_ndarray(img, format="yuv420p")
            yield Frame(self.index, self.offset + n / self.fps, now, self.width, self.height, img[:self.height],
                        _av=vf)
            self.index += 1
            n += 1
