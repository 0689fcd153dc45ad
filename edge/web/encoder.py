"""One H.264 encoder per camera shared by every live viewer, and the MJPEG fallback's shared JPEG.

``LiveEncoder`` encodes a camera's latest frame (never a queue of old ones, so latency cannot
grow) at up to ``fps``, scaled to ``width``, and only while someone watches. Each viewer's
``Subscriber`` gets the packets from a keyframe on; a viewer that falls behind skips to the next
keyframe. ``MjpegSource`` makes one JPEG per camera frame for all MJPEG viewers.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable

import av
import cv2
import numpy as np

from ..camera.capture import LatestFrame, Picture

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


class LiveEncoder:
    def __init__(self, name: str, latest: LatestFrame, *, width: int = 960, fps: float = 15.0,
                 bitrate: int = 1_500_000, keyframe_s: float = 2.0):
        self.name, self.latest = name, latest
        self.width, self.fps, self.bitrate, self.keyframe_s = width, fps, bitrate, keyframe_s
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._want_key = True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{name}", daemon=True)
        self.frames_encoded = 0
        self._bytes: list[tuple[float, int]] = []  # (time, size) of the last seconds, for the bitrate

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    @property
    def viewers(self) -> int:
        with self._lock:
            return len(self._subs)

    def bitrate_bps(self) -> float:
        now = time.monotonic()
        with self._lock:
            recent = [(t, n) for t, n in self._bytes if now - t <= 3.0]
            self._bytes = recent
        return 8 * sum(n for _, n in recent) / 3.0

    def subscribe(self, deliver: Callable[[av.Packet], None]) -> "Subscriber":
        sub = Subscriber(deliver)
        with self._lock:
            self._subs.add(sub)
            self._want_key = True
        self._wake.set()
        return sub

    def unsubscribe(self, sub: "Subscriber") -> None:
        with self._lock:
            self._subs.discard(sub)

    def _new_context(self, width: int, height: int) -> av.CodecContext:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = fractions.Fraction(int(self.fps), 1)
        ctx.time_base = VIDEO_TIME_BASE
        ctx.bit_rate = self.bitrate
        ctx.options = {"profile": "baseline", "level": "31", "tune": "zerolatency", "preset": "ultrafast",
                       "g": str(max(1, int(self.fps * self.keyframe_s)))}
        ctx.thread_count = 1
        return ctx

    def _run(self) -> None:
        ctx = None
        size = None
        last_index = -1
        next_due = 0.0
        while not self._stop.is_set():
            if not self._subs:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            frame = self.latest.wait_newer(last_index, 1.0)
            if frame is None:
                continue
            now = time.monotonic()
            if now < next_due:
                if self._stop.wait(next_due - now):
                    break
                frame = self.latest.frame or frame  # the newest, after the wait
            next_due = max(now, next_due) + 1.0 / self.fps
            last_index = frame.index
            width = min(self.width, frame.width) // 2 * 2
            height = max(2, round(frame.height * width / frame.width) // 2 * 2)
            if ctx is None or size != (width, height):
                ctx, size = self._new_context(width, height), (width, height)
                self._want_key = True
            vf = _to_video_frame(frame, width, height)
            vf.pts = int(time.monotonic() * 90000)
            vf.time_base = VIDEO_TIME_BASE
            if self._want_key:
                self._want_key = False
                vf.pict_type = av.video.frame.PictureType.I
            try:
                packets = ctx.encode(vf)
            except av.error.FFmpegError as exc:
                logger.error("live encoder of %s: %s", self.name, exc)
                ctx = None
                continue
            self.frames_encoded += 1
            for packet in packets:
                with self._lock:
                    self._bytes.append((time.monotonic(), packet.size))
                    subs = list(self._subs)
                for sub in subs:
                    sub.offer(packet)


def _to_video_frame(picture: Picture, width: int, height: int) -> av.VideoFrame:
    """A new VideoFrame owned by the encoder thread, from the camera's immutable picture."""
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture.i420), format="yuv420p")
    if (width, height) != (picture.width, picture.height):
        vf = vf.reformat(width=width, height=height)
    return vf


class Subscriber:
    """Hands packets to one viewer, from a keyframe on; drops to the next keyframe when the
    viewer has not taken the previous packets yet."""

    def __init__(self, deliver: Callable[[av.Packet], None]):
        self.deliver = deliver
        self.synced = False
        self.pending = 0
        self.lock = threading.Lock()

    def offer(self, packet: av.Packet) -> None:
        with self.lock:
            if not self.synced and not packet.is_keyframe:
                return
            if self.pending > 2 and not packet.is_keyframe:
                self.synced = False  # behind: wait for the next keyframe
                return
            self.synced = True
            self.pending += 1
        self.deliver(packet)

    def taken(self) -> None:
        with self.lock:
            self.pending = max(0, self.pending - 1)


class MjpegSource:
    """The MJPEG fallback: one JPEG per camera frame, shared by every MJPEG viewer."""

    def __init__(self, latest: LatestFrame, width: int = 640, quality: int = 70):
        self.latest, self.width, self.quality = latest, width, quality
        self._lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None
        self.viewers = 0

    def last(self) -> tuple[int, bytes] | None:
        with self._lock:
            return self._cached

    def jpeg(self, after: int, timeout: float = 2.0) -> tuple[int, bytes] | None:
        frame = self.latest.wait_newer(after, timeout)
        if frame is None:
            return None
        with self._lock:
            if self._cached is None or self._cached[0] != frame.index:
                rgb = frame.rgb(min(self.width, frame.width) // 2 * 2)
                ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                                       [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                self._cached = (frame.index, buf.tobytes())
            return self._cached
