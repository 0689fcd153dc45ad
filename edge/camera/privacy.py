"""Faces in a picture: where to look (regions around motion), finding them, and pixelating them
(``privacy.blur_faces``: no face leaves the device recognisable)."""

from __future__ import annotations

import cv2
import numpy as np

from .faces import Face, FaceDetector

MAX_FACE_REGIONS = 4


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
