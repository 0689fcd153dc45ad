"""The per-camera pipeline: motion, faces on motion, events with snapshots and clips.

``CameraPipeline`` takes the packets and frames of one camera (from ``capture.Camera`` on a
device, or straight from a file in ``xl-edge analyze``) and turns them into events through a
sink: motion events (start, end, zones, peak area, best snapshot, clip), face events (crop,
score, landmarks, linked to their motion event by its id), and ``video_loss`` /
``camera_restored``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from protocols.deviceconfig import CameraSection, MediaSection

from .capture import Frame, Packet, Session
from .clips import ClipRing
from .faces import Face, FaceDetector
from .media import ClipJob, MediaStore
from .motion import MotionDetector, MotionResult, MotionSettings, Zone
from .privacy import blur_faces, find_faces

logger = logging.getLogger(__name__)


@dataclass
class VisionEvent:
    type: str
    id: str
    t_start: float  # seconds since the source started
    t_end: float
    ts: float  # wall-clock time of the start
    data: dict[str, Any]


Sink = Callable[[VisionEvent], None]


@dataclass
class FrameResult:
    index: int
    t: float
    motion: MotionResult
    faces: list[Face] | None  # None: the detector did not run on this frame
    event_id: str | None


def motion_settings(cfg: CameraSection) -> MotionSettings:
    m = cfg.motion
    return MotionSettings(
        height=m.height, sensitivity=m.sensitivity,
        zones=tuple(Zone(z.name, tuple(tuple(p) for p in z.points), z.sensitivity) for z in m.zones),
        masks=tuple(tuple(tuple(p) for p in poly) for poly in m.masks))


@dataclass
class _Recording:
    event_id: str
    session: Session
    packets: list[Packet]
    started: float
    rel: str = ""
    until: float | None = None  # stop at this source time (the motion ended)


@dataclass
class _Motion:
    id: str
    t_start: float
    ts_start: float
    last_motion: float
    zones: set[str] = field(default_factory=set)
    peak_area: float = 0.0
    best: tuple[float, Frame, list] | None = None  # (rank, frame, boxes)
    best_faces: list[Face] | None = None
    faces: int = 0
    last_face_event: float = -1e9


class CameraPipeline:
    def __init__(self, name: str, cfg: CameraSection, sink: Sink, new_id: Callable[[], str], *,
                 detector: FaceDetector | None = None, media: MediaStore | None = None,
                 media_cfg: MediaSection | None = None, blur: bool = False):
        self.name, self.cfg, self.sink, self.new_id = name, cfg, sink, new_id
        self.detector = detector
        self.faces_on = cfg.faces.enabled and detector is not None
        self.media, self.media_cfg = media, media_cfg or MediaSection()
        self.blur = blur
        if blur and detector is None:
            raise ValueError("privacy.blur_faces needs the face model")
        self.settings = motion_settings(cfg)
        self.motion: MotionDetector | None = None
        self.fps = 25.0
        self.run = 0
        self.event: _Motion | None = None
        self.last_face_run = -1e9
        self.ring = ClipRing(cfg.clips.pre_roll_s + 1.0) if (cfg.clips.enabled and media is not None) else None
        self.recordings: list[_Recording] = []
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.down_reason = ""
        self.loss_reported = False
        self.frames = 0
        self.last_t = 0.0

    # --- input --------------------------------------------------------------------------

    def on_item(self, item: Packet | Frame) -> FrameResult | None:
        with self.lock:
            if isinstance(item, Packet):
                self._packet(item)
                return None
            return self._frame(item)

    def _packet(self, p: Packet) -> None:
        if self.ring is not None:
            self.ring.add(p)
        for rec in list(self.recordings):
            if p.session is not rec.session:
                self._finish_clip(rec)
                continue
            if not rec.packets and not p.key:
                continue
            rec.packets.append(p)
            if (rec.until is not None and p.t >= rec.until) or p.t - rec.started >= self.cfg.clips.max_s:
                self._finish_clip(rec)

    def _frame(self, frame: Frame) -> FrameResult:
        if self.motion is None or (self.motion.width, self.motion.height) != (frame.width, frame.height):
            self.motion = MotionDetector(frame.width, frame.height, self.settings, self.fps)
        self.frames += 1
        self.last_t = frame.t
        m = self.motion.update(frame.luma)
        self.run = self.run + 1 if m.motion else 0
        ev = self.event
        if ev is None and self.run >= self.cfg.motion.start_frames:
            ev = self._start(frame, zones=m.zones)
        faces = None
        if ev is not None:
            if m.motion:
                ev.last_motion = frame.t
                ev.zones.update(m.zones)
                ev.peak_area = max(ev.peak_area, m.area)
                if self.faces_on and frame.t - self.last_face_run >= 1.0 / self.cfg.faces.max_fps - 0.5 / self.fps:
                    self.last_face_run = frame.t
                    faces = self._faces(frame, m, ev)
                rank = (2.0 + max(f.score for f in faces)) if faces else m.area
                if ev.best is None or rank > ev.best[0]:
                    ev.best = (rank, frame, m.boxes)
                    ev.best_faces = faces
            if frame.t - ev.last_motion >= self.cfg.motion.end_s:
                self._end(ev)
            elif frame.t - ev.t_start >= self.cfg.motion.max_event_s:
                # long motion is split: the next part starts at this frame, not at the start of
                # the whole run (which dated every later part back to the first one's start)
                self._end(ev)
                ev = self._start(frame, back=0.0, zones=m.zones)
        return FrameResult(frame.index, frame.t, m, faces, ev.id if ev is not None else None)

    # --- motion events ------------------------------------------------------------------

    def _start(self, frame: Frame, back: float | None = None, zones=()) -> _Motion:
        """A new motion event; it starts ``back`` seconds before ``frame`` (by default when the
        run of motion frames that started it began). ``motion_start`` goes to the sink at once;
        ``motion`` (with its end, peak area, snapshot and clip) when it ends."""
        if back is None:
            back = (self.run - 1) / self.fps
        ev = _Motion(self.new_id(), frame.t - back, frame.ts - back, frame.t)
        self.event = ev
        # reported at once (ticket rules fire on it); the rest follows when it ends
        self.sink(VisionEvent("motion_start", ev.id, ev.t_start, ev.t_start, ev.ts_start,
                              {"camera": self.name, "start": round(ev.ts_start, 3),
                               "zones": sorted(zones)}))
        if self.ring is not None and self.ring.packets:  # the ring holds one session's packets
            self.recordings.append(_Recording(ev.id, self.ring.packets[-1].session,
                                              self.ring.since(ev.t_start - self.cfg.clips.pre_roll_s), ev.t_start,
                                              rel=self.media.clip_path(ev.id, self.name)))
        return ev

    def record_for(self, event_id: str) -> str | None:
        """A clip for another event (an alarm): the pre-roll held now and ``post_roll_s`` more.
        Returns its media path, or None when this camera keeps no clips or has no picture yet."""
        with self.lock:
            if self.ring is None or not self.ring.packets:
                return None
            now = self.ring.packets[-1].t
            rec = _Recording(event_id, self.ring.packets[-1].session, self.ring.since(now - self.cfg.clips.pre_roll_s),
                             now, rel=self.media.clip_path(event_id, self.name))
            rec.until = now + self.cfg.clips.post_roll_s
            self.recordings.append(rec)
            return rec.rel

    def _end(self, ev: _Motion) -> None:
        self.event = None
        data: dict[str, Any] = {"camera": self.name, "start": round(ev.ts_start, 3),
                                "end": round(ev.ts_start + ev.last_motion - ev.t_start, 3),
                                "zones": sorted(ev.zones), "peak_area": round(ev.peak_area, 5), "faces": ev.faces}
        if ev.best is not None:
            _, frame, boxes = ev.best
            data["boxes"] = [list(b) for b in boxes]
            data["size"] = [frame.width, frame.height]
            if self.media is not None:
                self._snapshot(ev, frame, boxes, data)
        for rec in list(self.recordings):
            if rec.event_id == ev.id:
                rec.until = ev.last_motion + self.cfg.clips.post_roll_s
                data["clip"] = rec.rel
                if rec.packets and rec.packets[-1].t >= rec.until:  # the post-roll is already in
                    self._finish_clip(rec)
        self.sink(VisionEvent("motion", ev.id, ev.t_start, ev.last_motion, ev.ts_start, data))

    def _snapshot(self, ev: _Motion, frame: Frame, boxes, data: dict) -> None:
        rgb = frame.rgb()
        if self.blur:
            faces = ev.best_faces if ev.best_faces is not None else find_faces(
                self.detector, rgb, boxes, self.cfg.faces.max_side)
            rgb = blur_faces(rgb, faces)
        snap = _scaled(rgb, self.media_cfg.snapshot_width)
        data["snapshot"] = self.media.save_jpeg(ev.id, self.name, "snapshot", snap)
        thumb = _scaled(rgb, self.media_cfg.thumb_width)
        data["thumb"] = base64.b64encode(self.media.encode_jpeg(thumb, 70)).decode()

    def _finish_clip(self, rec: _Recording) -> None:
        self.recordings.remove(rec)
        if rec.until is not None:  # the event ended long after its motion: cut at the post-roll
            for i, p in enumerate(rec.packets):
                if p.t > rec.until:
                    del rec.packets[i:]
                    break
        if rec.packets and self.media is not None:
            self.media.submit_clip(ClipJob(rec.event_id, rec.rel, rec.session.template, rec.packets))

    # --- faces --------------------------------------------------------------------------

    def _faces(self, frame: Frame, m: MotionResult, ev: _Motion) -> list[Face]:
        rgb = frame.rgb()
        faces = find_faces(self.detector, rgb, m.boxes, self.cfg.faces.max_side)
        if faces and frame.t - ev.last_face_event >= self.cfg.faces.interval_s:
            ev.last_face_event = frame.t
            best = max(faces, key=lambda f: f.score)
            ev.faces += 1
            self._face_event(ev, frame, rgb, best, len(faces))
        return faces

    def _face_event(self, ev: _Motion, frame: Frame, rgb: np.ndarray, face: Face, count: int) -> None:
        fid = self.new_id()
        x, y, w, h = face.box
        data: dict[str, Any] = {"camera": self.name, "motion_id": ev.id, "score": round(face.score, 3),
                                "box": [round(v, 1) for v in face.box],
                                "landmarks": [[round(a, 1), round(b, 1)] for a, b in face.landmarks],
                                "faces_in_frame": count}
        if self.media is not None and not self.blur:
            mx, my = w * 0.3, h * 0.3
            crop = rgb[max(0, int(y - my)):int(y + h + my) + 1, max(0, int(x - mx)):int(x + w + mx) + 1]
            if crop.size:
                data["crop"] = self.media.save_jpeg(fid, self.name, "face", crop)
                data["thumb"] = base64.b64encode(self.media.encode_jpeg(_scaled(crop, 96), 75)).decode()
        self.sink(VisionEvent("face", fid, frame.t, frame.t, frame.ts, data))

    # --- camera state -------------------------------------------------------------------

    def on_state(self, up: bool, reason: str) -> None:
        with self.lock:
            if up:
                if self.loss_reported:
                    down_s = time.monotonic() - (self.down_since or time.monotonic())
                    self.sink(VisionEvent("camera_restored", self.new_id(), self.last_t, self.last_t, time.time(),
                                          {"camera": self.name, "down_s": round(down_s, 1)}))
                self.down_since, self.loss_reported = None, False
                return
            if self.down_since is None:
                self.down_since, self.down_reason = time.monotonic(), reason
            if self.event is not None:
                self._end(self.event)
            for rec in list(self.recordings):
                self._finish_clip(rec)

    def tick(self) -> None:
        """Called regularly: a camera down for ``loss_after_s`` is a video_loss event."""
        with self.lock:
            if (self.down_since is not None and not self.loss_reported
                    and time.monotonic() - self.down_since >= self.cfg.loss_after_s):
                self.loss_reported = True
                self.sink(VisionEvent("video_loss", self.new_id(), self.last_t, self.last_t, time.time(),
                                      {"camera": self.name, "reason": self.down_reason[:200]}))

    def close(self, timeout: float = 2.0) -> None:
        """End the running event and hand over the clips (end of file, agent stopping). A
        pipeline whose camera thread is stuck inside it is left as it is."""
        if not self.lock.acquire(timeout=timeout):
            logger.error("camera %s: its pipeline is stuck; not waiting for it", self.name)
            return
        try:
            if self.event is not None:
                self._end(self.event)
            for rec in list(self.recordings):
                self._finish_clip(rec)
        finally:
            self.lock.release()


def _scaled(rgb: np.ndarray, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
