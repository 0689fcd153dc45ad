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
