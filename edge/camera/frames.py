"""What a camera source yields and what other threads may read: frames (the camera thread's),
immutable pictures (anyone's), compressed packets (for clips), and the ``Session`` every source
kind implements (``edge.camera.capture`` for files, URLs and devices, ``edge.camera.clocksource``
for the test camera)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np


class SourceError(Exception):
    """The source cannot be opened or read."""


@dataclass
class Frame:
    """A decoded frame, for the camera's own thread only (it may wrap a PyAV ``VideoFrame``,
    whose conversions run libswscale and must never run in two threads at once). Other threads
    get a ``Picture`` from ``picture()``. ``t`` is seconds since the source started (growing
    across file loops), ``ts`` the wall-clock time it was captured."""

    index: int
    t: float
    ts: float
    width: int
    height: int
    luma: np.ndarray  # HxW uint8, possibly strided
    _av: Any = None
    _bgr: np.ndarray | None = None

    def rgb(self, width: int | None = None) -> np.ndarray:
        """The frame as RGB (HxWx3 uint8), optionally scaled to ``width`` (aspect kept)."""
        height = None if width is None else max(2, round(self.height * width / self.width) // 2 * 2)
        if self._av is not None:
            if width is None or width == self.width:
                return self._av.to_ndarray(format="rgb24")
            return self._av.reformat(width=width, height=height, format="rgb24").to_ndarray()
        import cv2
        rgb = cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB)
        if width is not None and width != self.width:
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        return rgb

    def picture(self) -> "Picture":
        """The frame as I420 pixels in a read-only numpy array, converted here, in the camera's
        thread: what the live encoder and MJPEG threads read instead of the frame itself."""
        import cv2
        width, height = self.width // 2 * 2, self.height // 2 * 2
        if self._av is not None:
            vf = self._av
            if vf.format.name != "yuv420p" or (width, height) != (vf.width, vf.height):
                vf = vf.reformat(width=width, height=height, format="yuv420p")
            i420 = vf.to_ndarray()  # a plane copy, no scaling
        else:
            i420 = cv2.cvtColor(np.ascontiguousarray(self._bgr[:height, :width]), cv2.COLOR_BGR2YUV_I420)
        i420.setflags(write=False)
        return Picture(self.index, self.t, self.ts, width, height, i420)


@dataclass(frozen=True)
class Picture:
    """An immutable copy of a frame that any thread may read (the live view's input)."""

    index: int
    t: float
    ts: float
    width: int
    height: int
    i420: np.ndarray  # (height * 3 / 2) x width uint8, read-only

    def rgb(self, width: int | None = None) -> np.ndarray:
        """RGB (HxWx3 uint8), optionally scaled to ``width`` (aspect kept), with OpenCV on the
        caller's own arrays."""
        import cv2
        rgb = cv2.cvtColor(self.i420, cv2.COLOR_YUV2RGB_I420)
        if width is not None and width != self.width:
            height = max(2, round(self.height * width / self.width) // 2 * 2)
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        return rgb


@dataclass(frozen=True)
class Packet:
    """A compressed packet of the video stream, kept for clips."""

    data: bytes
    pts: int | None
    dts: int | None
    key: bool
    t: float  # seconds since the source started, like Frame.t
    session: "Session"


class Session:
    """One opening of a source. Clip packets of one session share its stream parameters."""

    template: Any = None  # the PyAV input stream (None for raw sources)
    time_base: Fraction | None = None
    width = height = 0
    fps = 25.0

    def read(self) -> Iterator[Packet | Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass
