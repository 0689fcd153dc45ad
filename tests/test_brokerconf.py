"""`xl-hub broker-config` files in a real Mosquitto: per-device logins and ACLs."""

from __future__ import annotations

import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.auth import mosquitto_hash
from protocols import topics

from .helpers import MOSQUITTO, Hub, device_id, free_port, wait_for


def _connect(port: int, user: str, password: str):
    result: dict = {"done": threading.Event(), "messages": []}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"c-{user}-{time.monotonic_ns()}")
    client.username_pw_set(user, password)
    client.on_connect = lambda c, u, f, rc, p: (result.update(rc=str(rc)), result["done"].set())
    client.on_message = lambda c, u, m: result["messages"].append((m.topic, m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    result["done"].wait(10)
    return client, result


def test_mosquitto_hash_is_what_mosquitto_passwd_makes(tmp_path):
    pwfile = tmp_path / "p"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "u", "s3cret-pass"], check=True,
                   capture_output=True)
    line = pwfile.read_text().strip().split(":", 1)[1]
    _, _, iterations, salt, _ = line.split("$")
    import base64
    assert mosquitto_hash("s3cret-pass", iterations=int(iterations), salt=base64.b64decode(salt)) == line


def test_generated_files_enforce_per_device_acls(tmp_path):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    a, b = device_id(1), device_id(2)
    pw_a, pw_b = hub.add_device(a), hub.add_device(b)
    port = free_port()
    out = tmp_path / "broker"
    hub.cli("broker-config", "--config", str(hub.config), "--out", str(out), "--hub-password-file",
            str(tmp_path / "hub-pw"), "--port", str(port), "--no-tls")
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "max_queued_messages" in conf
    import getpass
    (out / "run.conf").write_text(f"user {getpass.getuser()}\n" + conf.replace(f"listener {port}",
                                                                             f"listener {port} 127.0.0.1"))
    broker = subprocess.Popen([MOSQUITTO, "-c", str(out / "run.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    clients = []
    try:
        time.sleep(0.5)
        hub_client, hub_state = _connect(port, "xl-hub", (tmp_path / "hub-pw").read_text().strip())
        clients.append(hub_client)
        assert hub_state["rc"] == "Success"
        hub_client.subscribe("xl/v1/dev/+/event", qos=1)
        _, unknown = _connect(port, device_id(9), "guess-guess")
        assert unknown["rc"] in ("Not authorized", "Bad user name or password")
        _, wrong = _connect(port, a, pw_b)
        assert wrong["rc"] in ("Not authorized", "Bad user name or password")
        client_a, state_a = _connect(port, a, pw_a)
        clients.append(client_a)
        assert state_a["rc"] == "Success"
        time.sleep(0.3)
        client_a.publish(topics.event(b), b'{"spoof": true}', qos=1).wait_for_publish(5)
        client_a.publish(topics.event(a), b'{"own": true}', qos=1).wait_for_publish(5)
        wait_for(lambda: any(t == topics.event(a) for t, _ in hub_state["messages"]), 5, "A's own message")
        time.sleep(0.5)
        assert [t for t, _ in hub_state["messages"]] == [topics.event(a)]
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.terminate()
        broker.wait(10)
        hub.engine.dispose()
