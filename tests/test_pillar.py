"""Alarm pillar over real pty pairs: the simulator plays the MCU, the agent runs as a process."""

from __future__ import annotations

import random
import time

import pytest

from edge.pillar.simulator import PillarSim
from edge.pillar.link import SerialLink
from protocols import serial as sf

from .helpers import Edge, Hub, device_id, wait_for


@pytest.fixture
def pillar_env(tmp_path, procs, mosquitto):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", mosquitto=mosquitto)
    procs.append(hub)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid="330102001001001")
    mosquitto.start()
    hub.start()
    sim = PillarSim(tmp_path / "ttyPILLAR", heartbeat_s=0.5)
    sim.start()
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=0, kind="alarm-pillar",
                extra={"pillar": {"port": str(tmp_path / "ttyPILLAR"), "merge_window_s": 3, "mcu_timeout_s": 2}})
    procs.append(edge)
    edge.start()
    wait_for(lambda: sim.led == sf.Led.IDLE and any(t == sf.MsgType.VOLUME for _, t, _ in sim.received), 20,
             "the agent to open the port")
    yield hub, edge, sim
    sim.stop()


def _alarms(hub: Hub) -> list[dict]:
    with hub.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT data FROM events WHERE type = 'alarm' ORDER BY id").fetchall()
    import json
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def test_a_press_reaches_the_hub_as_one_alarm_and_the_led_follows(pillar_env):
    hub, edge, sim = pillar_env
    sim.click()
    wait_for(lambda: len(_alarms(hub)) == 1, 10, "the alarm on the hub")
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'")
    assert any(t == sf.MsgType.STROBE and p == b"\x01" for _, t, p in sim.received)
    leds = [p[0] for _, t, p in sim.received if t == sf.MsgType.LED]
    assert leds[-2:] == [sf.Led.ALARM_SENT, sf.Led.ALARM_RECEIVED]
    time.sleep(1)
    assert len(_alarms(hub)) == 1 and _alarms(hub)[0]["presses"] == 1


def test_five_presses_in_the_window_make_one_alarm_with_count_5(pillar_env):
    hub, edge, sim = pillar_env
    for _ in range(5):
        sim.click()
        time.sleep(0.1)
    wait_for(lambda: _alarms(hub) and _alarms(hub)[0]["presses"] == 5, 10, "one alarm with 5 presses")
    time.sleep(1)
    assert len(_alarms(hub)) == 1


def test_a_megabyte_of_noise_makes_no_alarm_and_the_agent_goes_on(pillar_env):
    hub, edge, sim = pillar_env
    sim.write_raw(random.Random(20261123).randbytes(1024 * 1024))
    time.sleep(2)
    assert _alarms(hub) == []
    assert edge.running()
    sim.click()
    wait_for(lambda: len(_alarms(hub)) == 1, 10, "a real press after the noise")


def test_tamper_and_mcu_silence_are_events(pillar_env):
    hub, edge, sim = pillar_env
    sim.tamper(True)
    sim.heartbeats.clear()
    wait_for(lambda: set(hub.event_ids()) and _types(hub) >= {"tamper", "mcu_lost"}, 15, "tamper and mcu_lost")
    sim.heartbeats.set()
    wait_for(lambda: "mcu_restored" in _types(hub), 10, "mcu_restored")


def _types(hub: Hub) -> set[str]:
    with hub.engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql("SELECT DISTINCT type FROM events")}


def test_port_removed_and_recreated_then_the_next_press_arrives(pillar_env):
    hub, edge, sim = pillar_env
    sim.unplug()
    time.sleep(1.5)
    assert edge.running()
    sim.plug()
    time.sleep(1)
    sim.click()
    wait_for(lambda: len(_alarms(hub)) == 1, 15, "the press after the port came back")
    assert "lost" in edge.output() and edge.output().count("pillar: opened") >= 2


def test_corrupted_and_truncated_frames_are_counted_and_dropped(tmp_path):
    """The link's own counters, over a real pty pair."""
    got: list[sf.Frame] = []
    sim = PillarSim(tmp_path / "tty", heartbeat_s=60)
    sim.start()
    link = SerialLink(str(tmp_path / "tty"), 115200, got.append, name="agent")
    link.start()
    try:
        wait_for(link.connected.is_set, 10, "the agent side to open")
        good = sf.encode(sf.Frame(7, sf.MsgType.TAMPER, b"\x01"))
        corrupted = bytearray(good)
        corrupted[6] ^= 0xFF  # payload byte flipped: CRC no longer matches
        for _ in range(10):
            sim.write_raw(bytes(corrupted))
        sim.write_raw(good[:5])  # cut short, then the line goes quiet
        time.sleep(0.3)
        sim.write_raw(sf.encode(sf.Frame(8, sf.MsgType.BUTTON, sf.button(True, 1))))
        wait_for(lambda: got, 5, "the good frame after the broken ones")
        counters = link.counters_all()
        assert counters["bad_crc"] == 10 and counters["truncated"] == 1
        assert [f.type for f in got] == [sf.MsgType.BUTTON]
    finally:
        link.stop()
        sim.stop()


def test_accepting_the_alarm_on_the_hub_lights_help_coming(pillar_env):
    hub, edge, sim = pillar_env
    from .test_gridregistry import SAMPLE
    (hub.folder / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(hub.folder / "county.csv"))
    hub.cli("user", "add", "--config", str(hub.config), "op", "--role", "operator", "--scope", "330102000000",
            "--password-stdin", stdin="operator password 1\n")
    hub.cli("user", "add", "--config", str(hub.config), "viewer", "--role", "viewer", "--scope", "330102000000",
            "--password-stdin", stdin="viewer password 12\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "op")
    viewer = hub.cli("token", "create", "--config", str(hub.config), "viewer")
    sim.click()
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'")
    with hub.engine.connect() as conn:
        alarm_id = conn.exec_driver_sql("SELECT id FROM events WHERE type = 'alarm'").scalar()
    assert hub.post(f"/api/v1/alarms/{alarm_id}/accept", viewer)[0] == 403
    assert hub.post("/api/v1/alarms/0190a0b0-0000-7000-8000-000000000000/accept", token)[0] == 404
    wait_for(lambda: hub.post(f"/api/v1/alarms/{alarm_id}/accept", token)[0] != 409 or None, 10, "the ticket")
    with hub.engine.connect() as conn:
        ticket = conn.exec_driver_sql("SELECT state, severity, assignee FROM tickets").one()
    assert tuple(ticket) == ("accepted", "urgent", "op")
    wait_for(lambda: sim.led == sf.Led.HELP_COMING, 10, "LED 'help coming'")
    # the second operator loses
    status, body = hub.post(f"/api/v1/alarms/{alarm_id}/accept", token)
    assert status == 409 and body["error"]["code"] == "conflict"
