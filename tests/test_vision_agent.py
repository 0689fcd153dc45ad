"""An edge agent with a camera (a generated scene played as a looping file) sends real motion
and face events, with thumbnails, to the hub; clips and snapshots stay on the device."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import sqlalchemy as sa

from edge.camera.scenes import Mover, SceneSpec, write_video

from .helpers import Edge, Hub, device_id, wait_for


def test_camera_events_reach_the_hub_with_thumbnails(tmp_path, procs):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    hub.start()
    dev = device_id(7)
    password = hub.add_device(dev)
    scene = SceneSpec(640, 360, seconds=6, seed=4, movers=[Mover(0.8, 4.5, (-60, 170), (640, 150), (50, 120), face=40)])
    write_video(scene, tmp_path / "edge" / "gate.mp4")
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=0, extra={
        "cameras": [{"name": "gate", "source": "gate.mp4", "motion": {"end_s": 1.0},
                     "clips": {"pre_roll_s": 1, "post_roll_s": 0.5}}]})
    procs.append(edge)
    edge.start()

    def hub_events(kind):
        with hub.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, data FROM events WHERE device_id = :d AND type = :t"),
                                {"d": dev, "t": kind}).fetchall()
        return [(r[0], json.loads(r[1]) if isinstance(r[1], str) else r[1]) for r in rows]

    # the motion is on the hub while it is still going on (ticket rules can fire then) ...
    started = wait_for(lambda: hub_events("motion"), 60, "the motion on the hub")[0][1]
    assert "end" not in started and started["camera"] == "gate" and "ended" not in started
    # ... and its end, peak area, snapshot and clip are folded in when it ends
    wait_for(lambda: any(m.get("ended") for _, m in hub_events("motion")) and hub_events("face"), 60,
             "the motion's end and a face on the hub")
    motion_id, motion = next((i, m) for i, m in hub_events("motion") if m.get("ended"))
    assert motion["camera"] == "gate" and motion["end"] > motion["start"] and motion["peak_area"] > 0
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(motion["thumb"]), np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[:2] == (180, 320)
    _, face = hub_events("face")[0]
    assert face["motion_id"] in {i for i, _ in hub_events("motion")} and face["score"] >= 0.5
    # the clip and the snapshot stay on the device, recorded in its media table
    rel = motion["clip"]
    wait_for(lambda: (tmp_path / "edge" / "media" / rel).exists(), 20, "the clip on the device")
    kinds = {r[0] for r in edge._query(f"SELECT kind FROM media WHERE event_id = '{motion_id}'")}
    assert kinds == {"snapshot", "clip"}
    assert edge.running()
    assert edge.stop() == 0
