"""The agent's cameras (``Vision``): a capture thread and a pipeline per camera, the media
store, and the per-camera stall watchdog."""

from __future__ import annotations

import logging
import threading
import time

from protocols.deviceconfig import CameraSection, EdgeConfig

from .capture import Camera, Frame
from .faces import FaceDetector
from .media import MediaStore
from .pipeline import CameraPipeline, VisionEvent
from ..store import NewEvent, Store, StoreError
from ..sync import FpsMeters

logger = logging.getLogger(__name__)


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
        """On the wire a motion is reported when it starts (a ``motion`` event with its start and
        first zones, under the motion's id) and completed when it ends (a ``motion_update`` naming
        it, with its end, zones, peak area, snapshot and clip), the way ``alarm_update`` works."""
        if ev.type == "motion_start":
            item = NewEvent("motion", ev.data, id=ev.id, ts=ev.ts)
        elif ev.type == "motion":
            item = NewEvent("motion_update", {**ev.data, "motion_id": ev.id}, ts=ev.ts)
        else:
            item = NewEvent(ev.type, ev.data, id=ev.id, ts=ev.ts)
        try:
            self.store.add_many([item])
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

    def record_alarm(self, alarm_id: str) -> str | None:
        """The pre-alarm clip (the first camera's pre-roll and post-roll), written as the alarm's."""
        for pipe in self.pipelines.values():
            rel = pipe.record_for(alarm_id)
            if rel is not None:
                return rel
        return None

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
    from .faces import installed_model
    threshold = min((c.faces.threshold for c in cfg.cameras), default=0.5)
    return FaceDetector(installed_model(), threads=1, threshold=threshold)
