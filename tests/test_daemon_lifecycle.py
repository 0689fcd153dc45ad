"""Both daemons as real processes: a taken port is one clear line and exit status 2; SIGTERM and
SIGINT stop either daemon within 5 s."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from .helpers import Edge, Hub, device_id, free_port, wait_for


def _hold(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _exits_with_one_line(proc, key: str, port: int) -> None:
    proc.start(**({"wait": False} if isinstance(proc, Hub) else {}))
    wait_for(lambda: not proc.running(), 30, f"{proc.name} to give up")
    assert proc.stop() == 2
    out = proc.output()
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if "cannot listen" in line]
    assert len(lines) == 1, out
    assert f"127.0.0.1:{port}" in lines[0], (port, lines)
    assert f"`{key}`" in lines[0], (key, lines)


@pytest.mark.parametrize("which", ["web", "embedded_broker"])
def test_a_taken_hub_port_is_one_line_and_exit_2(tmp_path, which):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    port = hub.web_port if which == "web" else hub.mqtt_port
    with _hold(port):
        _exits_with_one_line(hub, f"{which}.port", port)


def test_a_taken_lan_page_port_is_one_line_and_exit_2(tmp_path):
    port = free_port()
    edge = Edge(tmp_path / "edge", device_id(1), "pw", free_port(), rate=1,
                extra={"web": {"port": port, "host": "127.0.0.1"}})
    with _hold(port):
        _exits_with_one_line(edge, "web.port", port)


def _open_stream(base: str, login: str, fields: dict, path: str) -> None:
    """Log in and hold a streaming response open in a background reader."""
    import http.cookiejar
    import re
    import threading
    import urllib.parse
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(base + login, timeout=10).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    opener.open(base + login, data=urllib.parse.urlencode({**fields, "csrf_token": token}).encode(), timeout=10)
    resp = opener.open(base + path, timeout=30)

    def pump():
        try:
            while resp.read(4096):
                pass
        except Exception:  # the server closing the stream is what this test does
            pass
    threading.Thread(target=pump, daemon=True).start()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_either_daemon_stops_within_5_s_with_viewers_attached(tmp_path, procs, sig):
    import subprocess

    from edge.camera.scenes import Mover, SceneSpec, write_video

    from .helpers import BIN
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    hub.start()
    hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
            stdin="a long admin password\n")
    dev = device_id(1)
    password = hub.add_device(dev)
    folder = tmp_path / "edge"
    folder.mkdir()
    write_video(SceneSpec(320, 240, seconds=4, seed=3, movers=[Mover(1.0, 3.0, (-40, 100), (320, 90), (30, 60))]),
                folder / "cam.mp4")
    port = free_port()
    edge = Edge(folder, dev, password, hub.mqtt_port, rate=20, extra={
        "cameras": [{"name": "gate", "source": "cam.mp4"}],
        "web": {"host": "127.0.0.1", "port": port, "ice_addresses": ["127.0.0.1"]}})
    subprocess.run([str(BIN / "xl-edge"), "user", "add", "--config", str(edge.config), "m", "--role", "operator",
                    "--password-stdin"], input="a long monitor password\n", text=True, check=True, capture_output=True)
    procs.append(edge)
    edge.start()
    lan = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(lan), 20, "the LAN page")
    for path in ("/live/gate.mjpg", "/live/gate.mjpg", "/api/events/stream"):
        _open_stream(lan, "/login", {"name": "m", "password": "a long monitor password"}, path)
    for _ in range(3):
        _open_stream(f"http://127.0.0.1:{hub.web_port}", "/login",
                     {"username": "admin", "password": "a long admin password"}, "/stream")
    time.sleep(2)
    for proc in (edge, hub):
        t0 = time.monotonic()
        proc.proc.send_signal(sig)
        proc.proc.wait(30)
        took = time.monotonic() - t0
        assert proc.proc.returncode == 0, proc.output()[-2000:]
        assert took <= 5.0, f"{proc.name} took {took:.1f} s to stop"
        assert "Traceback" not in proc.output()


def _up(base: str) -> bool:
    import urllib.request
    try:
        urllib.request.urlopen(base + "/login", timeout=1).close()
        return True
    except OSError:
        return False
