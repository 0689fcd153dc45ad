"""Watching live video cannot crash or stall a camera pipeline: a 30 s soak (the 10-minute one is
bench/live_soak.py) with 4 WebRTC viewers and 2 MJPEG clients coming and going while the agent
analyses its camera under faulthandler."""

from __future__ import annotations

import signal
import time

from .helpers import Hub, device_id
from .live_soak import soak, start_agent


def test_viewers_coming_and_going_do_not_crash_or_stall_the_camera(tmp_path, procs, monkeypatch):
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    dev = device_id(1)
    password = hub.add_device(dev)
    hub.start()
    edge, base = start_agent(tmp_path / "edge", hub.mqtt_port, password, dev)
    procs.append(edge)
    edge.start()
    result = soak(edge, base, 30)
    assert result.crashed is None, result.crashed
    assert result.stalls == 0
    assert result.webrtc_sessions >= 8 and result.mjpeg_sessions >= 6, result
    assert result.min_fps > 5, result  # frames kept coming the whole time
    assert result.motion_events >= 2, result  # and so did the analysis (a person crosses every 8 s)
    assert not result.errors, result.errors[:5]
    t0 = time.monotonic()
    edge.proc.send_signal(signal.SIGTERM)
    assert edge.proc.wait(10) == 0 and time.monotonic() - t0 <= 5
