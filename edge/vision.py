"""The per-camera pipeline: motion, faces on motion, events with snapshots and clips.

``CameraPipeline`` takes the packets and frames of one camera (from ``capture.Camera`` on a
device, or straight from a file in ``xl-edge analyze``) and turns them into events through a
sink: motion events (start, end, zones, peak area, best snapshot, clip), face events (crop,
score, landmarks, linked to their motion event by its id), and ``video_loss`` /
``camera_restored``. ``Vision`` runs the cameras of an agent and stores their events.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .capture import Camera, Frame, Packet, Session
from protocols.deviceconfig import CameraSection, EdgeConfig, MediaSection
from .faces import Face, FaceDetector
from .media import ClipJob, MediaStore
from .motion import MotionDetector, MotionResult, MotionSettings, Zone
from .store import NewEvent, Store, StoreError
from .sync import FpsMeters

logger = logging.getLogger(__name__)

MAX_FACE_REGIONS = 4


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


def face_regions(boxes: list[tuple[int, int, int, int]], width: int, height: int,
                 limit: int = MAX_FACE_REGIONS) -> list[tuple[int, int, int, int]]:
    """Regions around motion boxes to look for faces in: widened, a head's room above, overlapping
    ones merged, the largest ``limit`` kept."""
    regions = []
    for x, y, w, h in boxes:
        side = max(w, h, 64)
        x0, x1 = x - max(w // 4, (side - w) // 2), x + w + max(w // 4, (side - w) // 2)
        y0, y1 = y - max(h // 4, (side - h) // 2), y + h + max(h // 10, (side - h) // 2)
        regions.append([max(0, x0), max(0, y0), min(width, x1), min(height, y1)])
    merged = True
    while merged and len(regions) > 1:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                a, b = regions[i], regions[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    regions[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    regions.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]), reverse=True)
    return [(r[0], r[1], r[2] - r[0], r[3] - r[1]) for r in regions[:limit]]


def find_faces(detector: FaceDetector, rgb: np.ndarray, boxes, max_side: int) -> list[Face]:
    h, w = rgb.shape[:2]
    found: list[Face] = []
    for x, y, rw, rh in face_regions(boxes, w, h):
        scale = min(2.0, max_side / max(rw, rh))
        for f in detector.detect(rgb[y:y + rh, x:x + rw], scale=scale):
            bx, by, bw, bh = f.box
            found.append(Face((bx + x, by + y, bw, bh), f.score, tuple((lx + x, ly + y) for lx, ly in f.landmarks)))
    return found


def blur_faces(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Pixelate each face (with a margin) so it cannot be recognised."""
    out = rgb.copy()
    h, w = out.shape[:2]
    for f in faces:
        x, y, fw, fh = f.box
        mx, my = fw * 0.2, fh * 0.2
        x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
        x1, y1 = min(w, int(x + fw + mx) + 1), min(h, int(y + fh + my) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        small = cv2.resize(out[y0:y1, x0:x1], (6, 6), interpolation=cv2.INTER_AREA)
        out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


class ClipRing:
    """The last ``seconds`` of compressed packets, always starting at a keyframe."""

    def __init__(self, seconds: float, max_bytes: int = 64 << 20):
        self.seconds, self.max_bytes = seconds, max_bytes
        self.packets: deque[Packet] = deque()
        self.keys: deque[Packet] = deque()
        self.bytes = 0

    def add(self, p: Packet) -> None:
        if self.packets and self.packets[0].session is not p.session:
            self.packets.clear()
            self.keys.clear()
            self.bytes = 0
        if not self.packets and not p.key:
            return  # a clip can only start at a keyframe
        self.packets.append(p)
        self.bytes += len(p.data)
        if p.key:
            self.keys.append(p)
        cutoff = p.t - self.seconds
        while len(self.keys) >= 2 and (self.keys[1].t <= cutoff or self.bytes > self.max_bytes):
            self.keys.popleft()
            while self.packets[0] is not self.keys[0]:
                self.bytes -= len(self.packets.popleft().data)

    def since(self, t: float) -> list[Packet]:
        """Packets from the last keyframe at or before ``t`` (or the oldest one) on."""
        start = None
        for k in self.keys:
            if k.t <= t or start is None:
                start = k
        if start is None:
            return []
        out, taking = [], False
        for p in self.packets:
            taking = taking or p is start
            if taking:
                out.append(p)
        return out


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
            ev = self._start(frame)
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
                ev = self._start(frame, back=0.0)
        return FrameResult(frame.index, frame.t, m, faces, ev.id if ev is not None else None)

    # --- motion events ------------------------------------------------------------------

    def _start(self, frame: Frame, back: float | None = None) -> _Motion:
        """A new motion event; it starts ``back`` seconds before ``frame`` (by default when the
        run of motion frames that started it began)."""
        if back is None:
            back = (self.run - 1) / self.fps
        ev = _Motion(self.new_id(), frame.t - back, frame.ts - back, frame.t)
        self.event = ev
        if self.ring is not None and self.ring.packets:  # the ring holds one session's packets
            self.recordings.append(_Recording(ev.id, self.ring.packets[-1].session,
                                              self.ring.since(ev.t_start - self.cfg.clips.pre_roll_s), ev.t_start,
                                              rel=self.media.clip_path(ev.id, self.name)))
        return ev

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


def camera_source(cfg: EdgeConfig, cam: CameraSection) -> str:
    src = cam.source
    if "://" in src or src.startswith("/dev/") or src.startswith("v4l2:"):
        return src
    return str(cfg.resolve(src))


class Vision:
    """The agent's cameras: capture threads, pipelines, media store and retention, and a watchdog
    per camera: a camera that is up but gives no frame for ``stall_after_s`` is stalled (a
    ``video_loss`` event with reason ``stalled``); its capture thread is abandoned and the
    camera and pipeline are made afresh. More than ``max_restarts`` stalls in 10 minutes and the
    agent reports itself dead (systemd then starts it again)."""

    RESTART_WINDOW_S = 600.0

    def __init__(self, cfg: EdgeConfig, store: Store, meters: FpsMeters, detector: FaceDetector | None):
        self.cfg, self.store, self.meters, self.detector = cfg, store, meters, detector
        self.media = MediaStore(cfg.resolve(cfg.media.path), store, quota_bytes=cfg.media.quota_mb << 20,
                                min_free_bytes=cfg.media.min_free_mb << 20, jpeg_quality=cfg.media.jpeg_quality)
        self.sections = {cam.name: cam for cam in cfg.cameras}
        self.pipelines: dict[str, CameraPipeline] = {}
        self.cameras: dict[str, Camera] = {}
        self.stalled: set[str] = set()
        self.restarts: dict[str, list[float]] = {cam.name: [] for cam in cfg.cameras}
        self.unrecoverable: str | None = None
        self.stored = 0
        for cam in cfg.cameras:
            meters.add_camera(cam.name)
            self._make(cam.name)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="vision-ticker", daemon=True)

    def _make(self, name: str, latest=None) -> Camera:
        """A pipeline and a capture thread for camera ``name`` (not started)."""
        cam = self.sections[name]
        pipe = CameraPipeline(name, cam, self._store, self.store.new_id, detector=self.detector, media=self.media,
                              media_cfg=self.cfg.media, blur=self.cfg.privacy.blur_faces)
        self.pipelines[name] = pipe
        camera = Camera(name, camera_source(self.cfg, cam), self._on_item(name, pipe), pipe.on_state,
                        loop=cam.loop, latest=latest)
        self.cameras[name] = camera
        return camera

    def _on_item(self, name: str, pipe: CameraPipeline):
        def handle(item):
            if pipe is not self.pipelines.get(name):
                return  # a pipeline replaced after a stall: what its old thread still hands in is dropped
            if isinstance(item, Frame):
                pipe.fps = self.cameras[name].fps
                self.meters.tick(name)
            pipe.on_item(item)
        return handle

    def _store(self, ev: VisionEvent) -> None:
        try:
            self.store.add_many([NewEvent(ev.type, ev.data, id=ev.id, ts=ev.ts)])
            self.stored += 1
        except StoreError as exc:
            logger.error("camera event %s not stored: %s", ev.type, exc)

    def start(self) -> None:
        self.media.start()
        for cam in self.cameras.values():
            cam.start()
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        for cam in self.cameras.values():
            cam.stop()
        for pipe in self.pipelines.values():
            pipe.close()
        self._ticker.join(timeout=5)
        self.media.stop()

    def alive(self) -> bool:
        return (self.unrecoverable is None and self._ticker.is_alive() and self.media.alive()
                and all(c.alive() for name, c in self.cameras.items() if name not in self.stalled))

    def _tick(self) -> None:
        last_sweep = 0.0
        while not self._stop.wait(0.25):
            for name in list(self.cameras):
                self._watch(name)
            self.meters.set_states(self.camera_states())
            for name, pipe in list(self.pipelines.items()):
                if name not in self.stalled:
                    pipe.tick()
            if time.monotonic() - last_sweep >= 60:
                last_sweep = time.monotonic()
                self.media.make_room(0)

    def _watch(self, name: str) -> None:
        camera, section = self.cameras[name], self.sections[name]
        now = time.monotonic()
        if name in self.stalled:
            if camera.frames > 0:  # the fresh capture delivers again
                self.stalled.discard(name)
                logger.info("camera %s: frames again after the restart", name)
            return
        if not camera.up or now - camera.last_frame_at < section.stall_after_s:
            return
        silent = now - camera.last_frame_at
        logger.error("camera %s stalled: no frame for %.1f s; starting its capture and pipeline afresh", name, silent)
        self.stalled.add(name)
        self._store(VisionEvent("video_loss", self.store.new_id(), 0.0, 0.0, time.time(),
                                {"camera": name, "reason": "stalled", "silent_s": round(silent, 1)}))
        recent = [t for t in self.restarts[name] if now - t < self.RESTART_WINDOW_S] + [now]
        self.restarts[name] = recent
        if len(recent) > section.max_restarts:
            self.unrecoverable = (f"camera {name} stalled {len(recent)} times in "
                                  f"{self.RESTART_WINDOW_S / 60:.0f} minutes; its pipeline cannot be restarted")
            logger.critical("%s", self.unrecoverable)
            return
        camera.abandon()
        self._make(name, latest=camera.latest).start()

    def camera_states(self) -> dict[str, str]:
        return {name: "stalled" if name in self.stalled else ("up" if cam.up else "down")
                for name, cam in self.cameras.items()}


def load_detector(cfg: EdgeConfig) -> FaceDetector | None:
    """The face detector if any camera wants faces or privacy needs them."""
    if not cfg.cameras or not (cfg.privacy.blur_faces or any(c.faces.enabled for c in cfg.cameras)):
        return None
    from .faces import install_model
    threshold = min((c.faces.threshold for c in cfg.cameras), default=0.5)
    return FaceDetector(install_model(), threads=1, threshold=threshold)



def analyze_file(path: str, cam: CameraSection, sink: Sink, *, detector: FaceDetector | None = None,
                 on_frame: Callable[[FrameResult], None] | None = None) -> int:
    """Run the pipeline over a recorded file as fast as it decodes; returns the frames seen."""
    from protocols.ids import EventIdGenerator

    from .capture import SourceError, open_session
    session = open_session(path)
    pipe = CameraPipeline(cam.name, cam, sink, EventIdGenerator().new, detector=detector)
    pipe.fps = session.fps
    try:
        for item in session.read():
            result = pipe.on_item(item)
            if result is not None and on_frame is not None:
                on_frame(result)
    except SourceError as exc:
        logger.warning("%s: stopped at frame %d: %s", path, pipe.frames, exc)
    finally:
        session.close()
    pipe.close()
    return pipe.frames
