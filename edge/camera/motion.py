"""Motion detection on a small grayscale copy of each frame.

Each frame's luma is shrunk to about 100 px high, then normalised by its own mean and
standard deviation (outside the masks): a light switched on, a cloud or the camera's switch
to infrared changes gain and offset of the whole picture, which this cancels. Each pixel
keeps a running mean and variance; a pixel is foreground when it is further than ``k``
standard deviations from its mean, where ``k`` comes from the sensitivity of the zone it lies
in. Swaying leaves and sensor noise raise their pixels' variance and stop counting; rain
streaks are thin and short-lived and an opening removes them. A change over most of the
picture at once is a change of the scene, not motion: the model re-learns from that frame.
Foreground blobs of enough area are motion boxes, mapped back to full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: a blob this small (pixels of the small picture) at sensitivity 100, growing as sensitivity drops
_MIN_AREA_AT_100 = 4
_VAR_FLOOR_GREY = 2.5  # grey levels: the smallest per-pixel deviation the model assumes


@dataclass(frozen=True)
class Zone:
    name: str
    points: tuple[tuple[float, float], ...]  # polygon, in fractions of width and height
    sensitivity: int = 50  # 1..100


@dataclass(frozen=True)
class MotionSettings:
    height: int = 100  # rows of the small picture
    sensitivity: int = 50  # frame-wide, used when there are no zones
    zones: tuple[Zone, ...] = ()
    masks: tuple[tuple[tuple[float, float], ...], ...] = ()  # polygons never looked at
    learn_s: float = 4.0  # time constant of the background model
    scene_change: float = 0.35  # fraction of the picture changing at once that means a new scene
    warmup_frames: int = 10


@dataclass
class MotionResult:
    motion: bool
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # full-resolution x, y, w, h
    area: float = 0.0  # fraction of the watched picture in motion
    zones: list[str] = field(default_factory=list)


def threshold_k(sensitivity: int) -> float:
    return 2.5 + 4.0 * (1 - sensitivity / 100)


def min_area(sensitivity: int) -> int:
    return _MIN_AREA_AT_100 + round(30 * (1 - sensitivity / 100))


class MotionDetector:
    def __init__(self, width: int, height: int, settings: MotionSettings = MotionSettings(), fps: float = 25.0):
        self.width, self.height, self.settings = width, height, settings
        self.step = max(1, height // (2 * settings.height))
        sh = min(settings.height, height)
        sw = max(8, round(width * sh / height))
        self.size = (sw, sh)
        self.sx, self.sy = width / sw, height / sh
        self.alpha = 1.0 / max(1.0, fps * settings.learn_s)
        watched = np.full((sh, sw), 255, np.uint8)
        for polygon in settings.masks:
            cv2.fillPoly(watched, [self._poly(polygon)], 0)
        kmap = np.full((sh, sw), threshold_k(settings.sensitivity), np.float32)
        self.zone_masks: list[tuple[Zone, np.ndarray]] = []
        if settings.zones:
            kmap[:] = np.inf  # only the zones are watched
            for zone in settings.zones:
                zm = np.zeros((sh, sw), np.uint8)
                cv2.fillPoly(zm, [self._poly(zone.points)], 1)
                zm &= watched > 0
                kmap[zm > 0] = np.minimum(kmap[zm > 0], threshold_k(zone.sensitivity))
                self.zone_masks.append((zone, zm.astype(bool)))
            watched[~np.isfinite(kmap)] = 0
            kmap[~np.isfinite(kmap)] = 1e6
        self.watched = watched
        self.watched_bool = watched > 0
        self.watched_px = max(1, int(self.watched_bool.sum()))
        self.k2 = kmap * kmap
        sens = [z.sensitivity for z in settings.zones] or [settings.sensitivity]
        self.min_area = min_area(max(sens))
        self.prev_grouped: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.var: np.ndarray | None = None
        self.frames = 0
        self.kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))

    def _poly(self, points) -> np.ndarray:
        sw, sh = self.size
        return np.array([[round(x * sw), round(y * sh)] for x, y in points], np.int32)

    def shrink(self, luma: np.ndarray) -> np.ndarray:
        """The small float32 picture from a full-resolution luma plane (HxW uint8, any strides)."""
        step = self.step
        sub = luma[::step, ::step] if step > 1 else luma
        return cv2.resize(sub, self.size, interpolation=cv2.INTER_AREA).astype(np.float32)

    def update(self, luma: np.ndarray) -> MotionResult:
        small = self.shrink(luma)
        # gain and offset from the pixels that were background last frame: a large bright object
        # must not shift the whole picture's statistics
        stats_mask = self.watched
        if self.prev_grouped is not None:
            stats_mask = cv2.subtract(self.watched, self.prev_grouped * 255)
            if cv2.countNonZero(stats_mask) < self.watched_px // 3:
                stats_mask = self.watched
        mean, std = cv2.meanStdDev(small, mask=stats_mask)
        scale = max(float(std[0, 0]), 1.0)
        x = (small - float(mean[0, 0])) * (1.0 / scale)
        floor = (_VAR_FLOOR_GREY / scale) ** 2
        self.frames += 1
        if self.mean is None:
            self.mean, self.var = x, np.full_like(x, floor * 4)
            return MotionResult(False)
        d = x - self.mean
        d2 = d * d
        # evidence summed over each 3x3 neighbourhood: a real object covers its neighbours,
        # noise and thin rain streaks do not
        ratio = cv2.blur(d2 / np.maximum(self.var, floor), (3, 3))
        fg = (ratio > self.k2) & self.watched_bool
        changed = np.count_nonzero(fg) / self.watched_px
        if changed > self.settings.scene_change:
            self.prev_grouped = None
            self.mean = x  # a new scene: learn it, keep the learned variance
            return MotionResult(False)
        a = self.alpha if self.frames > self.settings.warmup_frames else 0.5
        rate = np.where(fg, a * 0.05, a).astype(np.float32)  # foreground is learned slowly
        self.mean += rate * d
        self.var += rate * (np.minimum(d2, 25 * np.maximum(self.var, floor)) - self.var)
        if self.frames <= self.settings.warmup_frames:
            return MotionResult(False)
        mask = fg.view(np.uint8)
        if not mask.any():
            self.prev_grouped = None
            return MotionResult(False)
        grouped = cv2.dilate(mask, self.kernel, iterations=2) & self.watched
        self.prev_grouped = grouped
        count, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
        # a blob's size is its foreground pixels, not the dilated group's
        sizes = np.bincount(labels[fg], minlength=count)
        keep = sizes >= self.min_area
        keep[0] = False
        boxes = [(int(x0 * self.sx), int(y0 * self.sy), int(np.ceil(bw * self.sx)), int(np.ceil(bh * self.sy)))
                 for x0, y0, bw, bh, _ in stats[keep]]
        area = int(sizes[keep].sum())
        if not boxes:
            return MotionResult(False)
        zones = []
        if self.zone_masks:
            moving = keep[labels]
            zones = [z.name for z, zm in self.zone_masks if np.any(moving & zm)]
        return MotionResult(True, boxes, area / self.watched_px, zones)
