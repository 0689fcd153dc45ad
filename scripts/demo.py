"""`make demo`: the hub with its embedded broker and two edge agents whose cameras play a
generated village-gate scene (people with real faces, a van, a light switched on), so their
motion and face events are real detections.

Everything lives in .demo/ (made fresh each run). Ctrl-C stops the agents, then the hub.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
SAMPLE_VIDEO = Path.home() / ".cache" / "xueliang" / "demo" / "gate-1280x720-40s.mp4"
CHIME = WORK / "pillar-chime.wav"  # what the simulated pillar's microphone hears


def write_chime(path: Path, rate: int = 48000) -> None:
    """Two notes and a pause, over and over: what the simulated pillar's microphone hears."""
    import math
    import struct
    import wave
    samples = []
    for hz, seconds in ((660.0, 0.4), (880.0, 0.4), (0.0, 1.2)):
        samples += [int(9000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(int(rate * seconds))]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
BIN = Path(sys.executable).parent
DEVICES = [
    ("33010200001310000001", "camera-box", "村口东 Village gate east", 30.2741, 120.1551),
    ("33010200001340000001", "alarm-pillar", "村委会报警柱 Committee alarm pillar", 30.2745, 120.1560),
]


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def run(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(args, input=stdin, text=True, check=True, capture_output=True).stdout.strip()


#: media quotas of the demo (MB): three devices and the hub stay under 256 MB together
DEMO_EDGE_MEDIA_MB, DEMO_HUB_MEDIA_MB = 64, 64


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    mqtt_port, web_port, turn_port = free_port(18830), free_port(8080), free_port(3478)
    turnserver = shutil.which("turnserver") or ("/usr/bin/turnserver" if Path("/usr/bin/turnserver").exists() else None)
    hub_cfg = WORK / "hub.yaml"
    hub_cfg.write_text(f"database:\n  url: sqlite:///hub.db\nembedded_broker:\n  host: 127.0.0.1\n  port: {mqtt_port}\n"
                       f"web:\n  host: 127.0.0.1\n  port: {web_port}\ningest:\n  offline_after_s: 15\n"
                       f"media:\n  quota_mb: {DEMO_HUB_MEDIA_MB}\n"
                       + (f"live:\n  turn_urls: ['turn:127.0.0.1:{turn_port}?transport=udp']\n" if turnserver else ""))
    xl_hub, xl_edge = str(BIN / "xl-hub"), str(BIN / "xl-edge")
    if turnserver:  # the county's TURN relay for live video and talk-back from the hub
        run(xl_hub, "turn-config", "--config", str(hub_cfg), "--out", str(WORK / "turnserver.conf"), "--listen-ip",
            "127.0.0.1", "--port", str(turn_port), "--min-port", "49300", "--max-port", "49400",
            "--log-file", str(WORK / "coturn.log"), "--allow-loopback-peers")
    password = secrets.token_urlsafe(12)
    run(xl_hub, "user", "add", "--config", str(hub_cfg), "admin", "--role", "admin", "--password-stdin",
        stdin=password + "\n")
    token = run(xl_hub, "token", "create", "--config", str(hub_cfg), "admin", "--name", "demo")
    run(xl_hub, "registry", "import", "--config", str(hub_cfg), str(ROOT / "hub" / "samples" / "sample-county.csv"))
    video = SAMPLE_VIDEO
    if not video.exists():
        print("generating the sample camera scene (once; cached in", video.parent, ") …", flush=True)
        video.parent.mkdir(parents=True, exist_ok=True)
        run(xl_edge, "sample-video", str(video), "--seconds", "40")
    write_chime(CHIME)
    edge_cfgs = []
    lan_ports = []
    for i, (dev, kind, name, lat, lon) in enumerate(DEVICES, 1):
        folder = WORK / f"edge{i}"
        folder.mkdir()
        lan_ports.append(free_port(8080 + i))
        run(xl_hub, "device", "add", "--config", str(hub_cfg), dev, "--kind", kind, "--name", name,
            "--grid", "330102001001001", "--password-file", str(folder / "mqtt-password"))
        cfg = folder / "edge.yaml"
        cfg.write_text(json.dumps({
            "device": {"id": dev, "kind": kind, "model": "demo", "name": name, "grid_code": "330102001001001",
                       "location": {"latitude": lat, "longitude": lon, "address": name}},
            "broker": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "password_file": "mqtt-password",
                       "reconnect_max_s": 5},
            "sync": {"heartbeat_interval_s": 5, "hub_url": f"http://127.0.0.1:{web_port}"},
            "cameras": ([{"name": "gate", "source": str(video)},
                         {"name": "lane", "source": str(video), "motion": {"zones": [
                             {"name": "lane", "points": [[0, 0.3], [0.5, 0.3], [0.5, 1], [0, 1]]}]}}]
                        if kind == "camera-box" else [{"name": "pillar", "source": str(video)}]),
            **({"pillar": {"port": "ttyPILLAR", "siren_on_press": True},
                # talk-back: the pillar's "microphone" plays a chime, the operator's voice goes to a file
                "audio": {"input": str(CHIME), "output": "speaker.wav"}} if kind == "alarm-pillar" else {}),
            "web": {"host": "127.0.0.1", "port": lan_ports[-1], "ice_addresses": ["127.0.0.1"]},
            # the demo loops one recording all day: keep its pictures and clips small
            "media": {"quota_mb": DEMO_EDGE_MEDIA_MB},
        }, ensure_ascii=False, indent=2))  # JSON is YAML
        edge_cfgs.append(cfg)
        run(xl_edge, "user", "add", "--config", str(cfg), "monitor", "--role", "operator", "--password-stdin",
            stdin=password + "\n")

    procs: list[subprocess.Popen] = []
    names: list[str] = []
    logs = []

    def start(name: str, *args: str) -> None:
        log = open(WORK / f"{name}.log", "w")
        logs.append(log)
        names.append(name)
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=WORK,
                                      start_new_session=True))  # Ctrl-C reaches only us; we stop them in order

    start("hub", xl_hub, "run", "--config", str(hub_cfg))
    base = f"http://127.0.0.1:{web_port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            if procs[0].poll() is not None:
                print(open(WORK / "hub.log").read())
                return 1
            time.sleep(0.2)
    if turnserver:
        start("coturn", turnserver, "-c", str(WORK / "turnserver.conf"), "--pidfile", str(WORK / "coturn.pid"))
    # the alarm pillar's microcontroller, simulated on a pty pair: a press every 30 s
    start("pillar-sim", xl_edge, "pillar-sim", "--link", str(WORK / "edge2" / "ttyPILLAR"),
          "--script", "press@5,release@5.2", "--repeat", "30")
    for i, cfg in enumerate(edge_cfgs, 1):
        start(f"edge{i}", xl_edge, "run", "--config", str(cfg))

    print(f"""
雪亮 Xueliang demo is running (files and logs in {WORK})
  Hub page:   {base}/          user: admin   password: {password}
              总览 dashboard shows the pillar's alarms live; 工单 queue board: accept → handle → resolve
              → verify → archive; 统计 statistics; 地图 map; 网格 registry (a sample county is loaded)
  REST API:   curl -H 'Authorization: Bearer {token}' {base}/api/v1/devices
  Health:     {base}/healthz
  MQTT:       embedded broker on 127.0.0.1:{mqtt_port}
  Edge agents: {', '.join(d[0] for d in DEVICES)}: cameras play {video.name} (motion and face events
              with thumbnails; snapshots and clips in {WORK}/edge*/media); the pillar's button is
              pressed every 30 s
  Live video: {"设备 → a device, an alarm's ticket page (the pillar's camera plays; hold 按住讲话 to talk: your voice is written to " + str(WORK / "edge2" / "speaker.wav") + "), 视频墙 video wall; through coturn on 127.0.0.1:" + str(turn_port) if turnserver else "install coturn (apt-get install coturn) for live video from the hub"}
  LAN pages:  {'   '.join(f'http://127.0.0.1:{p}/' for p in lan_ports)}
              (the village monitors' page of each device: live video, events, alarms)
              user: monitor   password: {password}   (the same as the hub's admin, for the demo)
Press Ctrl-C to stop.
""", flush=True)

    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    req = urllib.request.Request(base + "/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    last_report = 0.0
    while not stopping:
        time.sleep(0.5)
        dead = [(name, p) for name, p in zip(names, procs) if p.poll() is not None]
        if dead:
            for name, p in dead:
                tail = (WORK / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                print(f"\n{name} stopped (exit status {p.returncode}); the last lines of {WORK / (name + '.log')}:")
                print("\n".join("    " + line for line in tail))
            break
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            try:
                items = json.load(urllib.request.urlopen(req, timeout=2))["items"]
                states = ", ".join(f"{d['id'][-6:]} {d['liveness']}" for d in items)
                print(f"[{time.strftime('%H:%M:%S')}] devices: {states}", flush=True)
            except OSError:
                pass
    print("stopping…", flush=True)
    # the agents and the pillar simulator together, then the hub: each daemon stops within 5 s
    hub, others = procs[0], procs[1:]
    for group, limit in ((others, 5.0), ([hub], 4.0)):
        for p in group:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + limit
        for name, p in zip(names, procs):
            if p in group and p.poll() is None:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop in {limit:.0f} s; killed")
                    p.kill()
                    p.wait()
    for log in logs:
        log.close()
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
