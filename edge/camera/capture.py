"""Camera capture: one owner thread per camera, reconnecting with backoff.

Sources:

- a video file (looped; paced at its own frame rate unless ``realtime`` is off, as in
  ``xl-edge analyze``), RTSP or HTTP URLs: opened with PyAV, which is FFmpeg. PyAV hands us the
  compressed packets as well as the decoded frames, so clips are cut from the camera's own H.264
  stream without re-encoding, and the luma plane of each decoded frame feeds motion detection
  with no colour conversion;
- a USB/V4L2 device (``/dev/videoN``): opened with OpenCV's V4L2 backend.
- ``clock://WIDTHxHEIGHT@FPS``: a test camera (``edge.camera.clocksource``).

The camera reports ``up``/``down`` to its owner, which turns a camera that stays down into a
``video_loss`` event and its return into ``camera_restored``. The latest frame is kept for the
live view.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from .frames import Frame, Packet, Picture, Session, SourceError

__all__ = ["Camera", "Frame", "LatestFrame", "Packet", "Picture", "Session", "SourceError", "open_session"]

logger = logging.getLogger(__name__)


def _is_device(source: str) -> bool:
    return source.startswith("/dev/video") or source.startswith("v4l2:")


class PyAVSession(Session):
    def __init__(self, source: str, offset: float, first_index: int):
        import av
        options = {}
        if source.startswith("rtsp://") or source.startswith("rtsps://"):
            options = {"rtsp_transport": "tcp"}
        if "://" not in source and not os.path.exists(source):
            raise SourceError(f"{source}: no such file")
        try:
            self.container = av.open(source, options=options, timeout=(10.0, 5.0))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"{source}: {exc}") from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{source}: no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "SLICE"
        self.template = self.stream
        self.time_base = self.stream.time_base
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.offset, self.index = offset, first_index
        self.start_pts: int | None = None
        self.last_t = offset

    def _t(self, pts: int | None) -> float:
        if pts is None or self.time_base is None:
            return self.last_t
        if self.start_pts is None:
            self.start_pts = pts
        return self.offset + float((pts - self.start_pts) * self.time_base)

    def read(self) -> Iterator[Packet | Frame]:
        import av
        try:
            for packet in self.container.demux(self.stream):
                if packet.size:
                    yield Packet(bytes(packet), packet.pts, packet.dts, packet.is_keyframe, self._t(packet.pts), self)
                for vf in packet.decode():
                    t = self._t(vf.pts)
                    self.last_t = t
                    plane = vf.planes[0]
                    luma = np.frombuffer(plane, np.uint8).reshape(vf.height, plane.line_size)[:, :vf.width]
                    if vf.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "nv12", "gray"):
                        luma = vf.to_ndarray(format="gray")
                    yield Frame(self.index, t, time.time(), vf.width, vf.height, luma, _av=vf)
                    self.index += 1
        except av.error.FFmpegError as exc:
            raise SourceError(str(exc)) from None

    def close(self) -> None:
        # The container stays open while packets of this session are still referenced (the
        # clip ring, a clip being written): the clip writer copies the stream's parameters from
        # it. PyAV closes it when the last reference goes.
        pass


class V4L2Session(Session):
    def __init__(self, source: str, offset: float, first_index: int):
        import cv2
        device = source.removeprefix("v4l2:")
        if not os.path.exists(device):
            raise SourceError(f"{device}: no such device")
        self.cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self.cap.isOpened():
            raise SourceError(f"{device}: cannot open")
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 25.0)
        self.offset, self.index, self.t0 = offset, first_index, time.monotonic()

    def read(self) -> Iterator[Packet | Frame]:
        import cv2
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                raise SourceError("the device stopped giving frames")
            luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            yield Frame(self.index, self.offset + time.monotonic() - self.t0, time.time(), bgr.shape[1],
                        bgr.shape[0], luma, _bgr=bgr)
            self.index += 1

    def close(self) -> None:
        self.cap.release()


def open_session(source: str, offset: float = 0.0, first_index: int = 0) -> Session:
    if source.startswith("clock://"):  # a test camera (latency benches)
        from .clocksource import ClockSession
        return ClockSession(source, offset, first_index)
    if _is_device(source):
        return V4L2Session(source, offset, first_index)
    return PyAVSession(source, offset, first_index)


class LatestFrame:
    """The newest picture of a camera, for readers that want only the latest (the live view).
    It holds ``Picture``s only: no decoder object leaves the camera's thread."""

    #: a reader within this many seconds keeps the camera thread making pictures
    WANTED_S = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.frame: Picture | None = None
        self._asked = float("-inf")

    def wanted(self) -> bool:
        """True while someone reads (the live view): only then does the camera thread pay for a
        picture per frame."""
        return time.monotonic() - self._asked < self.WANTED_S

    def put(self, picture: Picture) -> None:
        if not isinstance(picture, Picture):
            raise TypeError("LatestFrame takes Pictures (Frame.picture()), never a decoded frame")
        with self._cond:
            self.frame = picture
            self._cond.notify_all()

    def wait_newer(self, index: int, timeout: float) -> Picture | None:
        """The latest frame if it is newer than ``index``, waiting up to ``timeout`` seconds."""
        self._asked = time.monotonic()
        with self._cond:
            self._cond.wait_for(lambda: self.frame is not None and self.frame.index > index, timeout)
            frame = self.frame
        return frame if frame is not None and frame.index > index else None


class Camera:
    """Owns one source in its own thread; calls ``on_item`` with every packet and frame and
    ``on_state(up, reason)`` when the source comes up or goes down."""

    def __init__(self, name: str, source: str, on_item: Callable[[Packet | Frame], None],
                 on_state: Callable[[bool, str], None], *, loop: bool = True, realtime: bool = True,
                 backoff_min_s: float = 0.5, backoff_max_s: float = 10.0, latest: "LatestFrame | None" = None):
        self.name, self.source = name, source
        self.on_item, self.on_state = on_item, on_state
        self.loop, self.realtime = loop, realtime
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.latest = latest or LatestFrame()  # a restarted camera keeps its viewers' picture
        self.last_frame_at = time.monotonic()  # when the newest frame arrived (the stall watchdog reads it)
        self.up = False
        self.finished = False  # a file source played once to the end (loop off)
        self.frames = 0
        self.fps = 25.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)

    def abandon(self) -> None:
        """Ask a stalled thread to end when it wakes; nobody waits for it."""
        self._stop.set()

    def alive(self) -> bool:
        return self._thread.is_alive() or self.finished

    def _set_state(self, up: bool, reason: str) -> None:
        if up != self.up:
            self.up = up
            self.on_state(up, reason)

    def _run(self) -> None:
        backoff = self.backoff_min_s
        offset, index = 0.0, 0
        is_file = "://" not in self.source and not _is_device(self.source)
        while not self._stop.is_set():
            try:
                session = open_session(self.source, offset, index)
            except SourceError as exc:
                self._set_state(False, str(exc))
                logger.debug("camera %s: %s; retrying in %.1f s", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self.fps = session.fps
            reason = "end of stream"
            try:
                reason = self._play(session)
            except SourceError as exc:
                reason = str(exc)
            except Exception:  # a bug must not kill the camera thread silently
                logger.exception("camera %s: frame handling failed", self.name)
                reason = "frame handling failed"
            finally:
                session.close()
            offset = session.last_t + 1.0 / session.fps if isinstance(session, PyAVSession) else offset
            index = getattr(session, "index", index)
            if self._stop.is_set():
                break
            if is_file and reason == "end of stream":
                if not self.loop:
                    self.finished = True
                    self._set_state(False, "end of file")
                    return
                if self.frames:  # loop: start again at once
                    backoff = self.backoff_min_s
                    continue
            self._set_state(False, reason)
            logger.warning("camera %s down: %s; retrying in %.1f s", self.name, reason, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _play(self, session: Session) -> str:
        t_start: float | None = None
        wall_start = 0.0
        for item in session.read():
            if self._stop.is_set():
                return "stopped"
            if isinstance(item, Frame):
                if self.realtime and isinstance(session, PyAVSession) and "://" not in self.source:
                    if t_start is None:
                        t_start, wall_start = item.t, time.monotonic()
                    delay = wall_start + (item.t - t_start) - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return "stopped"
                    item.ts = time.time()
                self.frames += 1
                self.last_frame_at = time.monotonic()
                self._set_state(True, "frames arriving")
                if self.latest.wanted():
                    self.latest.put(item.picture())
            self.on_item(item)
        return "end of stream"
