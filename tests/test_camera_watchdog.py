"""A camera whose stream freezes (an HTTP camera that stops sending but keeps the connection):
the watchdog reports it stalled (video_loss, reason stalled), starts its capture and pipeline
afresh, and when that keeps failing the agent stops feeding systemd's watchdog and exits."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import pytest

from protocols.deviceconfig import EdgeConfig
from edge.camera.scenes import Mover, SceneSpec, write_video
from edge.store import Store
from edge.sync import FpsMeters
from edge.camera.vision import Vision

from .helpers import Edge, Hub, device_id, wait_for


def _mpegts(tmp_path) -> bytes:
    """A generated 6 s scene as MPEG-TS (streamable over HTTP without seeking)."""
    mp4, ts = tmp_path / "scene.mp4", tmp_path / "scene.ts"
    write_video(SceneSpec(320, 240, seconds=6, seed=4, movers=[Mover(1.0, 5.0, (-40, 100), (320, 90), (30, 60))]), mp4)
    with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            dst.mux(packet)
    return ts.read_bytes()


class FreezingCamera:
    """HTTP camera: the first ``freezing`` connections send a part of the stream and then nothing
    more, holding the connection open; later ones send the whole stream."""

    def __init__(self, data: bytes, freezing: int):
        self.data, self.freezing, self.connections = data, freezing, 0
        self.release = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                camera.connections += 1
                frozen = camera.connections <= camera.freezing
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    if frozen:
                        self.wfile.write(camera.data[:len(camera.data) // 3])
                        self.wfile.flush()
                        camera.release.wait(60)  # frozen: the connection stays open, nothing comes
                    else:
                        self.wfile.write(camera.data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return _mpegts(tmp_path_factory.mktemp("stream"))


def _vision(tmp_path, url: str, **camera) -> tuple[Vision, Store]:
    cfg = EdgeConfig.model_validate({
        "device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                   "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
        "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"},
        "cameras": [{"name": "gate", "source": url, "loss_after_s": 60, "faces": {"enabled": False}, **camera}],
        "media": {"path": str(tmp_path / "media")}})
    store = Store(tmp_path / "edge.db", cfg.device.id)
    return Vision(cfg, store, FpsMeters(), None), store


def _stalls(store: Store) -> list[dict]:
    return [e["data"] for e in store.events(type="video_loss") if e["data"].get("reason") == "stalled"]


def test_a_frozen_camera_is_reported_stalled_and_restarted(tmp_path, stream):
    camera = FreezingCamera(stream, freezing=1)
    vision, store = _vision(tmp_path, camera.url, stall_after_s=2)
    vision.start()
    try:
        wait_for(lambda: vision.cameras["gate"].frames > 5, 20, "frames from the HTTP camera")
        first = vision.cameras["gate"]
        wait_for(lambda: _stalls(store), 20, "video_loss with reason stalled")
        assert vision.cameras["gate"] is not first  # capture and pipeline made afresh
        assert vision.meters.states().get("gate") in ("stalled", "up")
        wait_for(lambda: vision.camera_states() == {"gate": "up"}, 20, "frames again after the restart")
        assert vision.alive() and vision.unrecoverable is None
        assert len(_stalls(store)) == 1 and _stalls(store)[0]["camera"] == "gate"
        assert camera.connections >= 2
    finally:
        vision.stop()
        camera.close()
        store.close()


def test_a_camera_that_keeps_stalling_makes_the_agent_stop_feeding_the_watchdog(tmp_path, procs, stream):
    camera = FreezingCamera(stream, freezing=100)
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    dev = device_id(1)
    password = hub.add_device(dev)
    hub.start()
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=0, extra={
        "cameras": [{"name": "gate", "source": camera.url, "stall_after_s": 2, "max_restarts": 1,
                     "faces": {"enabled": False}}]})
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1)
    log = open(tmp_path / "edge.log", "w")
    proc = subprocess.Popen(edge.args, cwd=edge.folder, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    try:
        pings: list[float] = []
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if "WATCHDOG=1" in sock.recv(4096).decode():
                    pings.append(time.monotonic())
            except TimeoutError:
                pass
        assert proc.poll() is not None, "the agent kept running with a camera it cannot restart"
        assert proc.returncode != 0
        assert pings, "the watchdog was never fed"
        out = (tmp_path / "edge.log").read_text()
        assert "stalled 2 times" in out and "cannot be restarted" in out
        # the stall reached the hub as a video_loss event
        wait_for(lambda: any('"stalled"' in str(r) or "stalled" in str(r) for r in hub.engine.connect().exec_driver_sql(
            "SELECT data FROM events WHERE type = 'video_loss'").fetchall()), 20, "video_loss on the hub")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        sock.close()
        camera.close()


def test_frame_rates_are_the_same_for_every_reader():
    meters = FpsMeters()
    meters.add_camera("gate")
    for _ in range(40):
        meters.tick("gate")
        time.sleep(0.025)
    first, second = meters.rates()["gate"], meters.rates()["gate"]  # heartbeat, then the LAN page
    assert 10 <= first <= 25 and abs(first - second) <= 0.5
