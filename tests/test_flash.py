"""`xl-edge flash` into a running agent over a serial cable made of two real pty pairs."""

from __future__ import annotations

import json
import subprocess

import pytest

from edge.pillar.flash import read_config, send_config

from .helpers import BIN, Edge, Hub, NullModem, device_id, wait_for


@pytest.fixture
def flash_env(tmp_path, procs, mosquitto):
    cable = NullModem(tmp_path)
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", mosquitto=mosquitto)
    procs.append(hub)
    dev = device_id(1)
    password = hub.add_device(dev)
    mosquitto.start()
    hub.start()
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=0,
                extra={"provisioning": {"port": cable.b}})
    procs.append(edge)
    edge.start()
    yield hub, edge, cable
    cable.close()


def _column(hub: Hub, dev: str, column: str):
    with hub.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT {column} FROM devices WHERE id = '{dev}'").scalar()


def test_flash_changes_the_running_agents_config(flash_env, tmp_path):
    hub, edge, cable = flash_env
    wait_for(lambda: _column(hub, edge.device_id, "status") == "online", 20, "the agent's birth message")
    cfg = json.loads(edge.config.read_text())
    cfg["device"]["location"]["address"] = "村委会门口 (flashed)"
    new = tmp_path / "new.yaml"
    new.write_text(json.dumps(cfg, ensure_ascii=False, indent=1))
    result = subprocess.run([BIN / "xl-edge", "flash", "--port", cable.a, str(new)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "read-back matches" in result.stderr
    assert edge.config.read_bytes() == new.read_bytes()
    assert (edge.config.parent / "edge.yaml.prev").exists()
    # the agent restarted into it: its new birth message carries the new address
    wait_for(lambda: _column(hub, edge.device_id, "address") == "村委会门口 (flashed)", 30, "the new address on the hub")
    assert edge.running()


def test_a_bad_config_is_refused_by_the_flasher_and_by_the_device(flash_env, tmp_path):
    hub, edge, cable = flash_env
    old = edge.config.read_bytes()
    cfg = json.loads(old)
    cfg["broker"]["keepalive_sec"] = 30
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(cfg))
    result = subprocess.run([BIN / "xl-edge", "flash", "--port", cable.a, str(bad)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "did you mean 'keepalive_s'?" in result.stderr and "not flashed" in result.stderr
    # sent raw, past the flasher's checks: the device refuses it and keeps its config
    code, message = send_config(cable.a, 115200, bad.read_bytes(), timeout=30)
    assert code != 0 and "keepalive_sec" in message
    assert edge.config.read_bytes() == old
    assert read_config(cable.a, 115200, timeout=30) == old
    code, message = send_config(cable.a, 115200, b"device: [unclosed", timeout=30)
    assert code != 0 and "YAML" in message
    assert edge.running() and edge.config.read_bytes() == old


def test_mcu_parameters_are_flashed_the_same_way(tmp_path):
    from edge.pillar.simulator import PillarSim
    from pathlib import Path

    sim = PillarSim(tmp_path / "ttyMCU", heartbeat_s=5)
    sim.start()
    try:
        params = Path(__file__).resolve().parent.parent / "firmware_configs" / "pillar-mcu.yaml"
        new = tmp_path / "mcu.yaml"
        new.write_text(params.read_text().replace("debounce_ms: 30", "debounce_ms: 250"))
        ok = subprocess.run([BIN / "xl-edge", "flash", "--target", "mcu", "--port", str(tmp_path / "ttyMCU"),
                             str(new)], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert sim.params.debounce_ms == 250
        bad = tmp_path / "bad.yaml"
        bad.write_text("debounce_ms: 1\n")
        refused = subprocess.run([BIN / "xl-edge", "flash", "--target", "mcu", "--port", str(tmp_path / "ttyMCU"),
                                  str(bad)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "debounce_ms = 1" in refused.stderr
        code, message = send_config(str(tmp_path / "ttyMCU"), 115200, bad.read_bytes(), target=1)
        assert code == 1 and "greater than or equal to 5" in message
        assert sim.params.debounce_ms == 250
        assert read_config(str(tmp_path / "ttyMCU"), 115200, target=1) == new.read_bytes()
    finally:
        sim.stop()
