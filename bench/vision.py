"""Vision costs: per-stage cost per frame at 720p and 1080p, the face detector against OpenCV's
cv2.dnn on the same model and input, and one 1080p 25 fps camera in a real agent.

Stages, measured in this process on the generated village-gate scene (H.264 at the bitrate IP
cameras stream at: 2 Mbit/s at 720p, 4 Mbit/s at 1080p; people with real faces, a van, a light
switched on, a swaying tree), one thread each:

- decode: PyAV/FFmpeg H.264 decode as the capture code does it (slice threads);
- motion: ``MotionDetector.update`` on the decoded luma plane;
- faces: the pipeline's face stage (regions around the motion boxes, CenterFace on onnxruntime)
  on frames with motion, per run.

``face_ms_320`` / ``face_ms_320_cv2dnn``: one 320x320 region holding a face, the same dynamic
CenterFace model, onnxruntime CPU provider on one thread vs ``cv2.dnn`` with one thread; median of
runs, preprocessing included in both.

``camera_1080p25_core_share``: ``xl-edge run`` as its own process with one camera playing the 1080p
scene at 25 fps in a loop (faces at most 5 per second, on motion; clips and snapshots on), against
a Mosquitto on a free loopback port; the agent's user+system CPU time over the measured window
divided by the window (1.0 = one core). ``agent_rss_mb``: its peak resident memory (VmHWM).

Usage: python bench/vision.py [--seconds 30]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from protocols.deviceconfig import CameraSection  # noqa: E402
from edge.camera.faces import FaceDetector, install_model  # noqa: E402
from edge.camera.motion import MotionDetector  # noqa: E402
from edge.camera.scenes import demo_scene, frames, write_video  # noqa: E402
from edge.camera.pipeline import motion_settings  # noqa: E402
from edge.camera.privacy import find_faces  # noqa: E402
from tests.helpers import Edge, Mosquitto, device_id, wait_for  # noqa: E402

CACHE = Path(os.environ.get("XL_BENCH_CACHE", Path.home() / ".cache" / "xueliang-bench"))
SCENE_SECONDS = 24.0


#: what IP cameras typically stream (main stream, H.264)
CAMERA_KBPS = {720: 2048, 1080: 4096}


def scene_file(width: int, height: int) -> Path:
    path = CACHE / f"vision-{width}x{height}-{int(SCENE_SECONDS)}s-{CAMERA_KBPS[height]}k.mp4"
    if not path.exists():
        print(f"writing {path.name} ...", file=sys.stderr)
        write_video(demo_scene(width, height, SCENE_SECONDS), path, bitrate_kbps=CAMERA_KBPS[height])
    return path


def stage_costs(path: Path, detector: FaceDetector) -> dict[str, float]:
    cam = CameraSection(name="bench", source=str(path))
    decode, motion, faces = [], [], []
    md = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        it = container.decode(stream)
        n = 0
        while True:
            t0 = time.perf_counter()
            try:
                vf = next(it)
            except StopIteration:
                break
            plane = vf.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(vf.height, plane.line_size)[:, :vf.width]
            t1 = time.perf_counter()
            if md is None:
                md = MotionDetector(vf.width, vf.height, motion_settings(cam))
            result = md.update(luma)
            t2 = time.perf_counter()
            decode.append(t1 - t0)
            motion.append(t2 - t1)
            if result.motion and n % 5 == 0:
                t3 = time.perf_counter()
                find_faces(detector, vf.to_ndarray(format="rgb24"), result.boxes, cam.faces.max_side)
                faces.append(time.perf_counter() - t3)
            n += 1
        bitrate = container.bit_rate
    return {"decode_ms": 1000 * statistics.mean(decode), "motion_ms": 1000 * statistics.mean(motion),
            "faces_ms_per_run": 1000 * statistics.mean(faces) if faces else 0.0, "face_runs": len(faces),
            "frames": n, "bitrate_kbps": round((bitrate or 0) / 1000)}


def face_region(width=1280, height=720) -> np.ndarray:
    spec = demo_scene(width, height, 10)
    for img, truth in frames(spec):
        if truth.faces:
            x, y, w, h = truth.faces[0]
            cx, cy = int(x + w / 2), int(y + h / 2)
            x0, y0 = max(0, min(width - 320, cx - 160)), max(0, min(height - 320, cy - 160))
            return np.ascontiguousarray(img[y0:y0 + 320, x0:x0 + 320])
    raise RuntimeError("the scene has no face")


def median_ms(fn, runs: int = 60) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def face_vs_dnn(model: Path) -> dict[str, float]:
    region = face_region()
    ours = FaceDetector(model, threads=1)
    assert ours.detect(region, scale=1.0), "no face in the benchmark region"
    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(str(model))
    names = net.getUnconnectedOutLayersNames()

    def dnn():
        blob = cv2.dnn.blobFromImage(region, 1.0, (320, 320), swapRB=False)
        net.setInput(blob)
        net.forward(names)

    return {"face_ms_320": median_ms(lambda: ours.detect(region, scale=1.0)), "face_ms_320_cv2dnn": median_ms(dnn)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def camera_share(video: Path, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="xl-bench-vision-") as tmp:
        tmp = Path(tmp)
        broker = Mosquitto(tmp / "mosquitto")
        dev, password = device_id(901), "bench-password-901"
        broker.add_user(dev, password)
        broker.start()
        edge = Edge(tmp / "edge", dev, password, broker.port, rate=0, extra={
            "cameras": [{"name": "gate", "source": str(video), "faces": {"max_fps": 5}}], "log_level": "WARNING"})
        edge.start()
        try:
            wait_for(lambda: edge._query("SELECT 1 FROM events WHERE type = 'motion'") or not edge.running(), 120,
                     "the agent's first motion event")
            assert edge.running(), edge.output()
            pid = edge.proc.pid
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            rss = peak_rss_mb(pid)
            events = len(edge.event_ids())
            assert edge.running(), edge.output()
        finally:
            edge.stop()
            broker.stop()
    return {"camera_1080p25_core_share": (c1 - c0) / (t1 - t0), "agent_rss_mb": rss, "agent_events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window of the camera run")
    args = parser.parse_args()
    model = install_model()
    detector = FaceDetector(model, threads=1)
    out: dict[str, float] = {}
    for name, (w, h) in {"720p": (1280, 720), "1080p": (1920, 1080)}.items():
        costs = stage_costs(scene_file(w, h), detector)
        print(f"{name}: decode {costs['decode_ms']:.2f} ms, motion {costs['motion_ms']:.2f} ms, faces "
              f"{costs['faces_ms_per_run']:.1f} ms per run ({costs['face_runs']} runs), {costs['frames']} frames, "
              f"{costs['bitrate_kbps']} kbit/s")
        out.update({f"decode_ms_{name}": costs["decode_ms"], f"motion_ms_{name}": costs["motion_ms"],
                    f"faces_ms_per_run_{name}": costs["faces_ms_per_run"]})
    out.update(face_vs_dnn(model))
    print(f"faces at 320x320: onnxruntime {out['face_ms_320']:.1f} ms, cv2.dnn {out['face_ms_320_cv2dnn']:.1f} ms "
          "(one thread each)")
    out.update(camera_share(scene_file(1920, 1080), args.seconds))
    print(f"agent with one 1080p 25 fps camera: {100 * out['camera_1080p25_core_share']:.1f} % of one core, "
          f"peak RSS {out['agent_rss_mb']:.0f} MB")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
