"""Generated camera scenes with ground truth, for tests, benchmarks and the demo.

A scene is a textured, static background seen by a noisy sensor, with the things a village
camera really sees: global brightness jumps (lights switched on, clouds), the day/night
switch to an infrared grayscale picture, rain streaks, a swaying tree, and moving objects —
some of them people whose face is a real photo (``skimage.data.astronaut()``) pasted at a
known place and size. Every frame comes with its truth: which objects move, where each fully
visible face is.

``write_video`` encodes a scene to H.264 MP4 with PyAV so the same scene can be played by a
file camera source, ``xl-edge analyze`` and the demo.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the astronaut's face in skimage.data.astronaut() (x, y, width, height), and a crop that holds it
_FACE = (180, 55, 90, 120)
_CROP = (30, 200, 150, 300)  # rows r0:r1, cols c0:c1


class ScenesUnavailable(Exception):
    """The face photo comes from scikit-image, which is not installed."""


def face_patch(width: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The astronaut's head scaled so the face is ``width`` px wide; returns the RGB patch and the
    face box inside it."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - depends on the install
        raise ScenesUnavailable("scene faces need scikit-image: pip install 'xueliang[scenes]'") from None
    import cv2
    r0, r1, c0, c1 = _CROP
    crop = data.astronaut()[r0:r1, c0:c1]
    scale = width / _FACE[2]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    patch = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    box = ((_FACE[0] - c0) * scale, (_FACE[1] - r0) * scale, _FACE[2] * scale, _FACE[3] * scale)
    return patch, box


@dataclass
class Mover:
    """An object crossing the picture from ``start`` to ``end`` (top-left corners, pixels) between
    ``t0`` and ``t1`` seconds. With ``face`` > 0 it is a person whose face is that many px wide."""

    t0: float
    t1: float
    start: tuple[float, float]
    end: tuple[float, float]
    size: tuple[int, int]  # width, height
    face: int = 0
    color: tuple[int, int, int] = (60, 90, 150)

    def position(self, t: float) -> tuple[int, int] | None:
        if not self.t0 <= t <= self.t1:
            return None
        a = (t - self.t0) / (self.t1 - self.t0)
        return (round(self.start[0] + a * (self.end[0] - self.start[0])),
                round(self.start[1] + a * (self.end[1] - self.start[1])))


@dataclass
class SceneSpec:
    width: int = 640
    height: int = 360
    fps: int = 25
    seconds: float = 10.0
    seed: int = 1
    noise: float = 4.0  # sensor noise, standard deviation in grey levels
    jumps: list[tuple[float, float]] = field(default_factory=list)  # (time, gain): global light changes
    ir_at: float | None = None  # switch to the infrared grayscale picture at this time
    rain: int = 0  # rain streaks per frame
    sway: bool = False  # a tree whose texture sways
    movers: list[Mover] = field(default_factory=list)


@dataclass
class Truth:
    index: int
    t: float
    moving: list[tuple[int, int, int, int]]  # boxes of objects in the picture (x, y, w, h)
    faces: list[tuple[float, float, float, float]]  # face boxes fully inside the picture


def _background(spec: SceneSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 100 + 30 * np.sin(xx / 17.0 + 0.7) * np.cos(yy / 23.0) + 20 * np.sin((xx + yy) / 41.0)
    img = np.repeat(base[..., None], 3, axis=2)
    img[..., 0] += 15
    img[..., 2] -= 10
    for _ in range(25):  # walls, windows, a road: flat blocks of colour
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        bw, bh = int(rng.integers(w // 20, w // 5)), int(rng.integers(h // 20, h // 5))
        img[y:y + bh, x:x + bw] = rng.uniform(40, 200, 3)
    img[int(h * 0.75):, :] = img[int(h * 0.75):, :] * 0.6 + 30  # road
    return np.clip(img, 0, 255)


def _tree(spec: SceneSpec, rng: np.random.Generator) -> tuple[tuple[int, int, int, int], np.ndarray]:
    w, h = spec.width // 6, spec.height // 3
    x, y = spec.width - w - spec.width // 20, spec.height // 10
    leaves = rng.uniform(40, 140, (h, w + 16)).astype(np.float32)
    import cv2
    leaves = cv2.GaussianBlur(leaves, (0, 0), 2.0)
    return (x, y, w, h), np.stack([leaves * 0.6, leaves, leaves * 0.5], axis=2)


def frames(spec: SceneSpec) -> Iterator[tuple[np.ndarray, Truth]]:
    """RGB frames (HxWx3 uint8) of the scene, each with its truth."""
    rng = np.random.default_rng(spec.seed)
    bg = _background(spec, rng)
    tree = _tree(spec, rng) if spec.sway else None
    patches = {}
    for m in spec.movers:
        if m.face and m.face not in patches:
            patches[m.face] = face_patch(m.face)
    total = int(round(spec.seconds * spec.fps))
    h, w = spec.height, spec.width
    for i in range(total):
        t = i / spec.fps
        img = bg.copy()
        if tree is not None:
            (tx, ty, tw, th), leaves = tree
            shift = int(round(8 + 6 * math.sin(2 * math.pi * 0.7 * t)))
            img[ty:ty + th, tx:tx + tw] = leaves[:, shift:shift + tw]
        moving, faces = [], []
        for m in spec.movers:
            pos = m.position(t)
            if pos is None:
                continue
            x, y = pos
            mw, mh = m.size
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + mw, w), min(y + mh, h)
            if x1 <= x0 or y1 <= y0:
                continue
            img[y0:y1, x0:x1] = m.color
            # clothes have folds and shadows
            img[y0:y1, x0:x1] += (25 * np.sin((np.arange(x0, x1) - x) / 3.0)[None, :, None]
                                  * np.cos((np.arange(y0, y1) - y) / 5.0)[:, None, None])
            moving.append((x0, y0, x1 - x0, y1 - y0))
            if m.face:
                patch, (fx, fy, fw, fh) = patches[m.face]
                ph, pw = patch.shape[:2]
                px, py = x + (mw - pw) // 2, y - ph + ph // 4  # the head sits on the body
                sx0, sy0, sx1, sy1 = max(px, 0), max(py, 0), min(px + pw, w), min(py + ph, h)
                if sx1 > sx0 and sy1 > sy0:
                    img[sy0:sy1, sx0:sx1] = patch[sy0 - py:sy1 - py, sx0 - px:sx1 - px]
                    moving[-1] = _union(moving[-1], (sx0, sy0, sx1 - sx0, sy1 - sy0))
                if px + fx >= 0 and py + fy >= 0 and px + fx + fw <= w and py + fy + fh <= h:
                    faces.append((px + fx, py + fy, fw, fh))
        gain = 1.0
        for at, g in spec.jumps:
            if t >= at:
                gain = g
        img *= gain
        if spec.ir_at is not None and t >= spec.ir_at:
            grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            img = np.repeat((grey * 1.3 + 25)[..., None], 3, axis=2)
        if spec.rain:
            _rain(img, rng, spec.rain)
        img += rng.normal(0, spec.noise, (h, w, 1)).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8), Truth(i, t, moving, faces)


def _union(a, b):
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _rain(img: np.ndarray, rng: np.random.Generator, count: int) -> None:
    h, w = img.shape[:2]
    length = max(4, h // 30)
    xs = rng.integers(0, w, count)
    ys = rng.integers(0, h - length, count)
    for k in range(length):  # thin, bright, slanted streaks, new every frame
        yy = ys + k
        xx = np.clip(xs + k // 3, 0, w - 1)
        img[yy, xx] = img[yy, xx] * 0.6 + 90


def write_video(spec: SceneSpec, path: str | Path, *, gop: int | None = None,
                bitrate_kbps: int | None = None) -> list[Truth]:
    """Encode the scene as H.264 MP4 (keyframe every ``gop`` frames, one second by default; at
    constant quality, or at about ``bitrate_kbps`` as a camera streams); returns the truth of
    every frame."""
    import av
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    truths = []
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(gop or spec.fps), "bf": "0"}
        if bitrate_kbps:
            stream.bit_rate = bitrate_kbps * 1000
            stream.options |= {"maxrate": f"{bitrate_kbps}k", "bufsize": f"{2 * bitrate_kbps}k"}
        else:
            stream.options |= {"crf": "20"}
        for img, truth in frames(spec):
            truths.append(truth)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return truths


def demo_scene(width: int = 1280, height: int = 720, seconds: float = 40.0, seed: int = 3) -> SceneSpec:
    """A village gate: a light switched on, a passing cloud, a swaying tree, people (two with a
    visible face) and a van crossing, then quiet."""
    s = width / 640
    return SceneSpec(
        width=width, height=height, seconds=seconds, seed=seed, noise=4.0, sway=True,
        jumps=[(6.0, 1.25), (22.0, 0.9)],
        movers=[
            Mover(2.0, 9.0, (-60 * s, 170 * s), (640 * s, 150 * s), (int(40 * s), int(110 * s)), face=int(40 * s)),
            Mover(12.0, 17.0, (650 * s, 250 * s), (-170 * s, 240 * s), (int(160 * s), int(70 * s)),
                  color=(200, 200, 210)),
            Mover(24.0, 33.0, (600 * s, 160 * s), (-50 * s, 180 * s), (int(36 * s), int(100 * s)), face=int(32 * s),
                  color=(150, 60, 50)),
        ])
