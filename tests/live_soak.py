"""Live-view soak driver, shared by ``bench/live_soak.py`` (10 minutes) and the suite's short
run: an agent (its own process, under ``faulthandler``) analyses a looping generated scene while
WebRTC viewers (aiortc peers) and MJPEG clients connect, watch and disconnect every few seconds.
It reports whether the agent crashed or stalled and whether frames and events kept coming."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import random
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from edge.camera.scenes import Mover, SceneSpec, write_video

from .helpers import BIN, Edge, free_port, wait_for

PASSWORD = "soak password 1"
SCENE = SceneSpec(640, 360, seconds=8, seed=31, movers=[Mover(2.0, 6.0, (-60, 170), (640, 150), (50, 120), face=40)])


@dataclass
class SoakResult:
    seconds: float
    webrtc_sessions: int = 0
    webrtc_frames: int = 0
    mjpeg_sessions: int = 0
    mjpeg_frames: int = 0
    motion_events: int = 0
    min_fps: float = 1e9
    stalls: int = 0
    crashed: str | None = None
    errors: list[str] = field(default_factory=list)


class _Session:
    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        self.opener.open(base + "/login", data=urllib.parse.urlencode(
            {"name": "monitor", "password": PASSWORD, "csrf_token": token}).encode(), timeout=10)
        index = self.opener.open(base + "/", timeout=10).read().decode()
        self.csrf = json.loads(re.search(r'<script id="xl-config" type="application/json">(.*?)</script>',
                                         index, re.S).group(1))["csrf"]

    def json(self, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=15) as resp:
            return json.load(resp)


async def _webrtc_viewer(session: _Session, camera: str, watch_s: float, result: SoakResult) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    got = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        async def pull():
            try:
                while True:
                    await track.recv()
                    result.webrtc_frames += 1
                    got.set()
            except Exception:
                pass
        asyncio.ensure_future(pull())
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(None, session.json, f"/api/live/{camera}/offer",
                                        {"type": "offer", "sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    try:
        await asyncio.wait_for(got.wait(), 15)
        result.webrtc_sessions += 1
        await asyncio.sleep(watch_s)
    except asyncio.TimeoutError:
        result.errors.append("a WebRTC viewer saw no frame in 15 s")
    finally:
        await pc.close()


def _mjpeg_viewer(session: _Session, camera: str, watch_s: float, result: SoakResult) -> None:
    with session.opener.open(f"{session.base}/live/{camera}.mjpg", timeout=15) as resp:
        end = time.monotonic() + watch_s
        frames = 0
        while time.monotonic() < end:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"Content-Type: image/jpeg"):
                frames += 1
        result.mjpeg_frames += frames
        if frames:
            result.mjpeg_sessions += 1
        else:
            result.errors.append("an MJPEG viewer saw no frame")


def start_agent(folder: Path, hub_port: int, password: str, dev: str) -> tuple[Edge, str]:
    folder.mkdir(parents=True, exist_ok=True)
    write_video(SCENE, folder / "gate.mp4")
    port = free_port()
    edge = Edge(folder, dev, password, hub_port, rate=0, extra={
        "cameras": [{"name": "gate", "source": "gate.mp4", "motion": {"end_s": 1.0}, "stall_after_s": 5}],
        "web": {"host": "127.0.0.1", "port": port, "ice_addresses": ["127.0.0.1"], "threads": 16}})
    subprocess.run([str(BIN / "xl-edge"), "user", "add", "--config", str(edge.config), "monitor", "--role",
                    "operator", "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    edge.args = [*edge.args]
    return edge, f"http://127.0.0.1:{port}"


def soak(edge: Edge, base: str, seconds: float, *, webrtc: int = 4, mjpeg: int = 2, seed: int = 1) -> SoakResult:
    """Run viewers against a started agent for ``seconds``; the agent must have been started with
    PYTHONFAULTHANDLER=1 so that a native crash prints its stacks into the log."""
    rng = random.Random(seed)
    result = SoakResult(seconds)
    wait_for(lambda: _up(base), 30, "the LAN page")
    stop = threading.Event()

    def webrtc_loop(i: int) -> None:
        session = _Session(base)
        loop = asyncio.new_event_loop()
        try:
            while not stop.is_set():
                try:
                    loop.run_until_complete(_webrtc_viewer(session, "gate", rng.uniform(1.0, 5.0), result))
                except Exception as exc:
                    if edge.running():
                        result.errors.append(f"WebRTC viewer {i}: {exc!r}"[:200])
                stop.wait(rng.uniform(0.2, 2.0))
        finally:
            loop.close()

    def mjpeg_loop(i: int) -> None:
        session = _Session(base)
        while not stop.is_set():
            try:
                _mjpeg_viewer(session, "gate", rng.uniform(1.0, 4.0), result)
            except Exception as exc:
                if edge.running():
                    result.errors.append(f"MJPEG viewer {i}: {exc!r}"[:200])
            stop.wait(rng.uniform(0.2, 2.0))

    threads = [threading.Thread(target=webrtc_loop, args=(i,), daemon=True) for i in range(webrtc)]
    threads += [threading.Thread(target=mjpeg_loop, args=(i,), daemon=True) for i in range(mjpeg)]
    for t in threads:
        t.start()
    watcher = _Session(base)
    end = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < end:
        time.sleep(2)
        if not edge.running():
            result.crashed = f"the agent exited with {edge.proc.returncode if edge.proc else '?'}"
            break
        try:
            health = watcher.json("/api/health")
        except Exception as exc:
            result.errors.append(f"health: {exc!r}"[:200])
            continue
        cam = health["cameras"][0]
        if time.monotonic() - started > 10:  # after warm-up
            result.min_fps = min(result.min_fps, cam["fps"])
        if cam["state"] == "stalled":
            result.stalls += 1
    stop.set()
    for t in threads:
        t.join(20)
    events = watcher.json("/api/events?type=motion&limit=500")
    result.motion_events = len(events["items"])
    result.stalls += sum(1 for e in watcher.json("/api/events?type=video_loss&limit=100")["items"]
                         if e["data"].get("reason") == "stalled")
    log = edge.output()
    if "Fatal Python error" in log or "Segmentation fault" in log:
        result.crashed = (result.crashed or "") + " native crash: " + log[log.find("Fatal Python error"):][:2000]
    return result


def _up(base: str) -> bool:
    try:
        urllib.request.urlopen(base + "/login", timeout=1).close()
        return True
    except OSError:
        return False
