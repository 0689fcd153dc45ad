"""The camera pipeline's events, snapshots, clips, privacy, zones, retention and camera loss,
on generated H.264 scenes played through the real capture code."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time

import av
import cv2
import numpy as np
import pytest

from edge.camera.capture import Packet
from protocols.deviceconfig import CameraSection, EdgeConfig, MediaSection
from edge.camera.faces import FaceDetector, install_model
from edge.camera.media import MediaStore
from edge.camera.scenes import Mover, SceneSpec, write_video
from edge.store import NewEvent, Store
from edge.sync import FpsMeters
from edge.camera.clips import ClipRing
from edge.camera.pipeline import CameraPipeline
from edge.camera.privacy import blur_faces, find_faces
from edge.camera.vision import Vision

from .helpers import BIN, device_id, wait_for

W, H = 640, 360
# one person walking left to right from 1 s to 5 s, face 40 px wide; quiet before and after
PERSON = SceneSpec(W, H, seconds=9, seed=5, movers=[Mover(1.0, 5.0, (-60, 170), (W, 150), (50, 120), face=40)])


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(install_model())


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "person.mp4"
    return path, write_video(PERSON, path, gop=12)


def play(path, cam: CameraSection, detector, media: MediaStore | None, *, blur: bool = False):
    events = []
    pipe = CameraPipeline(cam.name, cam, events.append, _ids(), detector=detector, media=media, blur=blur)
    from edge.camera.capture import open_session
    session = open_session(str(path))
    pipe.fps = session.fps
    for item in session.read():
        pipe.on_item(item)
    session.close()
    pipe.close()
    if media is not None:
        media.flush()
    return events


def _ids():
    from protocols.ids import EventIdGenerator
    return EventIdGenerator().new


def media_store(tmp_path, store=None, quota_mb=100) -> MediaStore:
    store = store or Store(tmp_path / "edge.db", device_id(1))
    m = MediaStore(tmp_path / "media", store, quota_bytes=quota_mb << 20, min_free_bytes=0)
    m.start()
    return m


def test_a_walk_past_is_one_motion_event_with_snapshot_thumbnail_and_clip(tmp_path, person, detector):
    path, truths = person
    media = media_store(tmp_path)
    cam = CameraSection(name="gate", source=str(path), clips={"pre_roll_s": 1.0, "post_roll_s": 1.0})
    events = play(path, cam, detector, media)
    motions = [e for e in events if e.type == "motion"]
    assert len(motions) == 1
    ev = motions[0]
    first = min(t.t for t in truths if t.moving)
    last = max(t.t for t in truths if t.moving)
    assert abs(ev.t_start - first) <= 0.2 and abs(ev.t_end - last) <= 0.2, (ev.t_start, ev.t_end)
    snap = cv2.imread(str(media.path(ev.data["snapshot"])))
    assert snap.shape == (H, W, 3)
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(ev.data["thumb"]), np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[1] == 320
    # the clip: from a keyframe at most 1 s + one GOP before the start, to 1 s after the end, playable
    clip = media.path(ev.data["clip"])
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
    seconds = frames / 25
    expected = (last - first) + 1.0 + 1.0
    assert expected - 0.1 <= seconds <= expected + 12 / 25 + 0.1, (seconds, expected)
    media.stop()


def test_face_events_carry_crop_score_landmarks_and_their_motion_id(tmp_path, person, detector):
    path, _ = person
    media = media_store(tmp_path)
    events = play(path, CameraSection(name="gate", source=str(path), faces={"interval_s": 2}), detector, media)
    motion = next(e for e in events if e.type == "motion")
    faces = [e for e in events if e.type == "face"]
    assert 1 <= len(faces) <= 3  # the first face at once, then at most one per 2 s of the 4 s walk
    for f in faces:
        assert f.data["motion_id"] == motion.id and f.id != motion.id
        assert f.data["score"] >= 0.5 and len(f.data["landmarks"]) == 5
        crop = cv2.imread(str(media.path(f.data["crop"])))
        assert crop is not None and crop.shape[0] >= 40
        # the crop holds the face: the detector finds it again
        assert find_faces(detector, crop[..., ::-1].copy(), [(0, 0, crop.shape[1], crop.shape[0])], 320)
    assert motion.data["faces"] == len(faces)
    media.stop()


def test_privacy_blurs_every_face_that_leaves_the_device(tmp_path, person, detector):
    path, _ = person
    media = media_store(tmp_path)
    events = play(path, CameraSection(name="gate", source=str(path)), detector, media, blur=True)
    motion = next(e for e in events if e.type == "motion")
    faces = [e for e in events if e.type == "face"]
    assert faces and all("crop" not in f.data and "thumb" not in f.data for f in faces)
    snap = cv2.imread(str(media.path(motion.data["snapshot"])))[..., ::-1].copy()
    whole = [(0, 0, W, H)]
    assert find_faces(detector, snap, whole, 640) == []
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(motion.data["thumb"]), np.uint8), cv2.IMREAD_COLOR)
    assert find_faces(detector, thumb[..., ::-1].copy(), [(0, 0, thumb.shape[1], thumb.shape[0])], 640) == []
    assert not list((tmp_path / "media").rglob("*-face.jpg"))
    media.stop()


def test_blur_removes_a_detectable_face(detector, person):
    from edge.camera.scenes import frames
    img, truth = next((f, t) for f, t in frames(PERSON) if t.faces)
    assert find_faces(detector, img, truth.moving, 320)
    blurred = blur_faces(img, find_faces(detector, img, truth.moving, 320))
    assert find_faces(detector, blurred, truth.moving, 320) == []


def test_zones_and_masks_decide_where_motion_counts(person, detector):
    path, _ = person
    left = {"name": "left", "points": [[0, 0], [0.3, 0], [0.3, 1], [0, 1]]}
    events = play(path, CameraSection(name="c", source=str(path), motion={"zones": [left]}), None, None)
    motion = [e for e in events if e.type == "motion"]
    assert len(motion) == 1 and motion[0].data["zones"] == ["left"]
    assert motion[0].t_end < 2.8  # the person leaves the left third at about 2.3 s
    # a mask over the whole walkway: nothing
    mask = [[0, 0.2], [1, 0.2], [1, 1], [0, 1]]
    top_only = CameraSection(name="c", source=str(path), motion={"masks": [mask]})
    assert [e for e in play(path, top_only, None, None) if e.type == "motion"] == []


def _packet(t: float, key: bool, session) -> Packet:
    return Packet(b"x" * 100, int(t * 1000), int(t * 1000), key, t, session)


def test_the_clip_ring_keeps_the_pre_roll_from_a_keyframe():
    ring = ClipRing(2.0)
    s = object()
    ring.add(_packet(0.0, False, s))  # no keyframe yet: nothing to start from
    assert not ring.packets
    for i in range(100):  # 10 packets/s, a keyframe each second
        ring.add(_packet(i / 10, i % 10 == 0, s))
    assert ring.packets[0].key and ring.packets[0].t == 7.0  # keeps >= 2 s: from the keyframe at 7 s
    got = ring.since(8.5)
    assert got[0].t == 8.0 and got[0].key and got[-1].t == 9.9
    other = object()  # the camera reconnected: old packets cannot go in the same clip
    ring.add(_packet(10.0, True, other))
    assert len(ring.packets) == 1


def test_the_quota_removes_the_oldest_synced_clips_first_and_never_an_unsynced_event(tmp_path):
    store = Store(tmp_path / "edge.db", device_id(1))
    media = MediaStore(tmp_path / "media", store, quota_bytes=10 * 100_000, min_free_bytes=0)
    blob = bytes(100_000)
    events = store.add_many([NewEvent("motion", {"n": i}) for i in range(14)])
    store.mark_synced([e.id for e in events[:6]])  # the hub has the first six

    def clips() -> set[int]:
        return {int(p.name[:2]) for p in (tmp_path / "media" / "cam").iterdir()}

    for i, ev in enumerate(events):  # ten fill the quota; each of the next four pushes one out
        assert media.save_bytes(ev.id, "clip", f"cam/{i:02d}-clip.mp4", blob)
    assert clips() == set(range(4, 14))  # the four oldest synced ones went, oldest first
    assert store.media_bytes() == 10 * 100_000
    for i in range(3):  # two more synced clips can go; then nothing can, and the clip is refused
        media.save_bytes(events[13].id, "clip", f"cam/{20 + i}-clip.mp4", blob)
    assert media.refused == 1 and media.deleted == 6
    assert clips() == set(range(6, 14)) | {20, 21}  # every unsynced event's clip is still there
    assert store.media_bytes() <= 10 * 100_000
    assert len(store.event_ids()) == 14  # events are never deleted for room


def test_a_camera_that_disappears_gives_video_loss_then_camera_restored(tmp_path, person, detector):
    src = tmp_path / "cam.mp4"
    short = SceneSpec(W, H, seconds=2, seed=9)
    write_video(short, src)
    keep = tmp_path / "keep.mp4"
    shutil.copy(src, keep)
    cfg = EdgeConfig.model_validate({
        "device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                   "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
        "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"},
        "cameras": [{"name": "gate", "source": str(src), "loss_after_s": 1}],
        "media": {"path": str(tmp_path / "media")}})
    store = Store(tmp_path / "edge.db", cfg.device.id)
    vision = Vision(cfg, store, FpsMeters(), detector)
    vision.start()
    try:
        wait_for(lambda: vision.cameras["gate"].frames > 10, 10, "frames from the file camera")
        src.unlink()
        wait_for(lambda: "video_loss" in types(store), 15, "video_loss")
        assert vision.camera_states() == {"gate": "down"} and vision.alive()
        shutil.copy(keep, src)
        wait_for(lambda: "camera_restored" in types(store), 15, "camera_restored")
        assert vision.alive() and vision.camera_states() == {"gate": "up"}
        loss = [e["data"] for e in store.events(type="video_loss")]
        assert loss[0]["camera"] == "gate" and "no such file" in loss[0]["reason"]
        assert types(store).count("video_loss") == 1
    finally:
        vision.stop()


def types(store: Store) -> list[str]:
    return [e["type"] for e in store.events(limit=100)]


def test_analyze_prints_one_json_line_per_event(tmp_path, person):
    path, truths = person
    config = tmp_path / "edge.yaml"
    config.write_text(json.dumps({
        "device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                   "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
        "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"},
        "cameras": [{"name": "gate", "source": "rtsp://192.0.2.1/stream"}]}))
    out = subprocess.run([str(BIN / "xl-edge"), "analyze", str(path), "--config", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert {line["type"] for line in lines} == {"motion", "face"}
    motion = next(line for line in lines if line["type"] == "motion")
    first = min(t.t for t in truths if t.moving)
    assert abs(motion["start"] - first) <= 0.2 and motion["end"] > motion["start"]
    assert all(line["motion_id"] == motion["id"] for line in lines if line["type"] == "face")
    assert "frames analysed" in out.stderr
    bad = subprocess.run([str(BIN / "xl-edge"), "analyze", str(path), "--config", str(config), "--camera", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "has no camera 'nope'" in bad.stderr


def test_long_motion_is_split_once_per_max_event_s_each_part_with_its_own_start(tmp_path, detector):
    # a van crossing slowly for 12 s: with max_event_s 5 that is three parts, 0-5, 5-10, 10-12
    path = tmp_path / "slow.mp4"
    write_video(SceneSpec(W, H, seconds=14, seed=8, movers=[Mover(1.0, 13.0, (-120, 150), (W, 150), (120, 80))]),
                path)
    cam = CameraSection(name="gate", source=str(path), motion={"max_event_s": 5}, faces={"enabled": False})
    motions = [e for e in play(path, cam, None, None) if e.type == "motion"]
    assert len(motions) == 3, [(round(e.t_start, 2), round(e.t_end, 2)) for e in motions]
    starts = [e.t_start for e in motions]
    assert len(set(starts)) == 3 and starts == sorted(starts)
    assert abs(starts[0] - 1.0) <= 0.3
    for a, b in zip(motions, motions[1:]):
        assert abs(b.t_start - a.t_start - 5.0) <= 0.1  # each part is max_event_s long
    assert all(e.data["start"] < e.data["end"] for e in motions)
