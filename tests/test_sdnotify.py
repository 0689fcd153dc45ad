"""The daemons speak sd_notify to a NOTIFY_SOCKET the test creates: READY, WATCHDOG at the
configured interval, STOPPING on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import BIN, Edge, Hub, device_id

ROOT = Path(__file__).resolve().parent.parent


def _listen(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    return sock, path


def _messages(sock: socket.socket, proc: subprocess.Popen, until: str) -> list[tuple[float, str]]:
    got = []
    while True:
        data = sock.recv(4096).decode()
        got.append((time.monotonic(), data))
        if until in data:
            return got


@pytest.mark.parametrize("daemon", ["edge", "hub"])
def test_ready_watchdog_stopping(tmp_path, procs, mosquitto, daemon):
    sock, path = _listen(tmp_path)
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"}  # ping every 0.3 s
    if daemon == "hub":
        args = [str(BIN / "xl-hub"), "run", "--config", str(hub.config)]
        cwd = hub.folder
    else:
        procs.append(hub)
        dev = device_id(1)
        password = hub.add_device(dev)
        hub.start()
        edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=5)
        args, cwd = edge.args, edge.folder
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = _messages(sock, proc, "READY=1")
        assert "READY=1" in first[-1][1]
        pings = []
        while len(pings) < 6:
            t, msg = _messages(sock, proc, "WATCHDOG=1")[-1]
            pings.append(t)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert all(0.15 < g < 0.8 for g in gaps), gaps
        proc.send_signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for _, m in _messages(sock, proc, "STOPPING=1"))
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


@pytest.mark.parametrize("unit", ["xl-edge.service", "xl-hub.service"])
def test_units_are_notify_with_watchdog_and_hardening(unit):
    text = (ROOT / "systemd" / unit).read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "ProtectSystem=strict", "StateDirectory=",
                 "RestrictAddressFamilies=", "SystemCallFilter=@system-service"):
        assert line in text, f"{unit} lacks {line}"
    if unit == "xl-edge.service":
        assert "DeviceAllow=" in text and "SupplementaryGroups=video dialout" in text
    # every directive has a comment line above it somewhere in its block
    assert text.count("#") >= 15
