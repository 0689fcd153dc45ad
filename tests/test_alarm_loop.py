"""The alarm loop with real processes: a pillar simulator on a pty, the edge agent, Mosquitto and
the hub. Accepting an alarm anywhere reaches the pillar's LED, durably and once; a command for
an older alarm never changes a newer alarm's LED; the village monitor's acknowledgement reaches
the ticket's timeline."""

from __future__ import annotations

import re
import signal
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from protocols import serial as sf
from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Hub, device_id, wait_for
from .test_pillar import pillar_env  # noqa: F401  (the fixture)

OP_PASSWORD = "operator password 1"


def _users(hub: Hub) -> str:
    from .test_gridregistry import SAMPLE
    (hub.folder / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(hub.folder / "county.csv"))
    hub.cli("user", "add", "--config", str(hub.config), "op", "--role", "operator", "--scope", "330102000000",
            "--password-stdin", stdin=OP_PASSWORD + "\n")
    hub.cli("user", "add", "--config", str(hub.config), "worker", "--role", "grid_worker", "--scope",
            "330102001001001", "--password-stdin", stdin="worker password 12\n")
    return hub.cli("token", "create", "--config", str(hub.config), "op")


def _alarm_ids(hub: Hub) -> list[str]:
    with hub.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT id FROM events WHERE type = 'alarm' ORDER BY id")]


def _ticket_of(hub: Hub, alarm_id: str) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM tickets WHERE event_id = :a"), {"a": alarm_id}).scalar()


def _command_acked(hub: Hub):
    with hub.engine.connect() as conn:
        return conn.execute(sa.text("SELECT acked_at FROM device_commands")).scalar()


def _leds(sim, since: float = 0.0) -> list[int]:
    return [p[0] for t0, t, p in sim.received if t == sf.MsgType.LED and t0 >= since]


class Console:
    """A staff member's browser session on the hub's console (cookies and CSRF tokens)."""

    def __init__(self, hub: Hub):
        self.base = f"http://127.0.0.1:{hub.web_port}"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def _token(self, path: str) -> str:
        html = self.opener.open(self.base + path, timeout=10).read().decode()
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def post(self, path: str, form: dict, token_from: str) -> str:
        data = urllib.parse.urlencode({**form, "csrf_token": self._token(token_from)}).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as resp:
            return resp.read().decode()

    def login(self, username: str, password: str) -> None:
        self.post("/login", {"username": username, "password": password}, "/login")


def test_console_accept_lights_help_coming_and_close_stands_the_pillar_down(pillar_env):  # noqa: F811
    hub, edge, sim = pillar_env
    _users(hub)
    sim.click()
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'")
    [alarm_id] = _alarm_ids(hub)
    ticket = _ticket_of(hub, alarm_id)
    # a grid worker sees the ticket but may not accept an alarm: the console offers no button,
    # and a forged post changes nothing
    worker = Console(hub)
    worker.login("worker", "worker password 12")
    page = worker.opener.open(f"{worker.base}/tickets/{ticket}", timeout=10).read().decode()
    assert 'value="accept"' not in page
    worker.post(f"/tickets/{ticket}/act", {"action": "accept"}, f"/tickets/{ticket}")
    time.sleep(0.5)
    assert sim.led == sf.Led.ALARM_RECEIVED
    # the operator presses 受理 on the ticket page
    op = Console(hub)
    op.login("op", OP_PASSWORD)
    page = op.opener.open(f"{op.base}/tickets/{ticket}", timeout=10).read().decode()
    assert 'value="accept"' in page
    pressed = time.monotonic()
    op.post(f"/tickets/{ticket}/act", {"action": "accept"}, f"/tickets/{ticket}")
    wait_for(lambda: sim.led == sf.Led.HELP_COMING, 5, "LED 'help coming' after 受理")
    assert time.monotonic() - pressed < 2
    with hub.engine.connect() as conn:
        cmd = conn.execute(sa.text("SELECT command, alarm_id, by, acked_at FROM device_commands")).one()
    assert cmd[:3] == ("help_coming", alarm_id, "op")
    wait_for(lambda: _command_acked(hub), 5, "the pillar's ack of the command")
    # handled and resolved: the pillar stands down
    op.post(f"/tickets/{ticket}/act", {"action": "start"}, f"/tickets/{ticket}")
    op.post(f"/tickets/{ticket}/act", {"action": "resolve"}, f"/tickets/{ticket}")
    wait_for(lambda: sim.led == sf.Led.IDLE, 5, "LED idle once the ticket is resolved")


def test_pillar_offline_at_accept_shows_help_coming_within_2s_of_reconnecting_once(pillar_env):  # noqa: F811
    hub, edge, sim = pillar_env
    token = _users(hub)
    sim.click()
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'")
    [alarm_id] = _alarm_ids(hub)
    edge.stop()
    stopped = time.time()
    status, body = hub.post(f"/api/v1/alarms/{alarm_id}/accept", token)
    assert status == 202, body
    time.sleep(3)  # sent, to nobody: the command waits in the hub's outbox
    with hub.engine.connect() as conn:
        sent, acked = conn.execute(sa.text("SELECT sent_count, acked_at FROM device_commands")).one()
    assert sent >= 1 and acked is None
    assert sim.led == sf.Led.ALARM_RECEIVED
    restart = time.monotonic()
    edge.start()

    def online():
        with hub.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT status, status_ts FROM devices WHERE id = :d"),
                               {"d": edge.device_id}).one()
        return row[0] == "online" and row[1] > stopped
    wait_for(online, 20, "the pillar back online at the hub")
    back = time.monotonic()
    wait_for(lambda: sim.led == sf.Led.HELP_COMING, 5, "LED 'help coming' after the reconnect")
    lit = next(t0 for t0, t, p in sim.received if t == sf.MsgType.LED and p[0] == sf.Led.HELP_COMING and t0 >= restart)
    assert lit - back < 2.0, f"help coming {lit - back:.2f} s after the pillar came back"
    wait_for(lambda: _command_acked(hub), 5, "the ack of the command")
    # once: one command applied on the device; a hub restart (which resends whatever is unacked)
    # sends nothing again and the LED is not set again
    hub.stop()
    hub.start()
    time.sleep(2)
    assert edge._query("SELECT count(*) FROM applied_commands") == [(1,)]
    assert _leds(sim, restart).count(sf.Led.HELP_COMING) == 1


def test_help_coming_for_an_older_alarm_leaves_a_newer_alarms_led(pillar_env):  # noqa: F811
    hub, edge, sim = pillar_env
    token = _users(hub)
    sim.click()
    wait_for(lambda: len(_alarm_ids(hub)) == 1, 10, "the first alarm")
    time.sleep(3.5)  # past the merge window: the next press is a new alarm
    sim.click()
    wait_for(lambda: len(_alarm_ids(hub)) == 2, 10, "the second alarm")
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received' for the second alarm")
    older, newer = _alarm_ids(hub)
    mark = time.monotonic()
    assert hub.post(f"/api/v1/alarms/{older}/accept", token)[0] == 202
    wait_for(lambda: edge._query(f"SELECT state FROM alarms WHERE id = '{older}'") == [("help_coming",)], 10,
             "the older alarm's state on the device")
    time.sleep(0.5)
    assert sim.led == sf.Led.ALARM_RECEIVED and sf.Led.HELP_COMING not in _leds(sim, mark)
    assert hub.post(f"/api/v1/alarms/{newer}/accept", token)[0] == 202
    wait_for(lambda: sim.led == sf.Led.HELP_COMING, 5, "LED 'help coming' for the newer alarm")


def _lan_ack_event(dev: str, alarm_id: str, seq: int, by: str = "monitor") -> Event:
    return Event(id=EventIdGenerator().new(), device_id=dev, type="alarm_ack", ts=time.time(), seq=seq, priority=3,
                 data={"alarm_id": alarm_id, "by": by, "via": "lan"})


def test_a_lan_acknowledgement_is_on_the_ticket_timeline_and_only_for_its_own_device(tmp_path, procs, db_url):
    hub = Hub(tmp_path / "hub", db_url)
    procs.append(hub)
    devs = [device_id(1, "134"), device_id(2, "134")]
    passwords = [hub.add_device(d, kind="alarm-pillar", grid="330102001001001") for d in devs]
    hub.start()
    clients = []
    for dev, password in zip(devs, passwords):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev)
        c.username_pw_set(dev, password)
        c.connect("127.0.0.1", hub.mqtt_port)
        c.loop_start()
        clients.append(c)
    alarm = Event(id=EventIdGenerator().new(), device_id=devs[0], type="alarm", ts=time.time(), seq=1, priority=3,
                  data={"presses": 1})
    clients[0].publish(topics.event(devs[0]), encode_event(alarm), qos=1)
    wait_for(lambda: _ticket_of(hub, alarm.id), 10, "the alarm's ticket")
    ticket = _ticket_of(hub, alarm.id)
    # another device claims to acknowledge it: ignored; its own device's village monitor: on the timeline
    clients[1].publish(topics.event(devs[1]), encode_event(_lan_ack_event(devs[1], alarm.id, 1, "intruder")), qos=1)
    own = _lan_ack_event(devs[0], alarm.id, 2)
    for _ in range(3):  # resent: still one line on the timeline
        clients[0].publish(topics.event(devs[0]), encode_event(own), qos=1)

    def lan_rows():
        with hub.engine.connect() as conn:
            return conn.execute(sa.text("SELECT actor, from_state, to_state FROM ticket_transitions "
                                        "WHERE ticket_id = :t AND action = 'lan_ack'"), {"t": ticket}).all()
    wait_for(lambda: lan_rows(), 10, "the LAN acknowledgement on the timeline")
    time.sleep(1)
    assert [tuple(r) for r in lan_rows()] == [("monitor@LAN", "dispatched", "dispatched")]
    with hub.engine.connect() as conn:
        party = conn.execute(sa.text("SELECT acked_by, acked_at FROM notifications WHERE ticket_id = :t "
                                     "AND target = 'village_monitor'"), {"t": ticket}).one()
    assert party[0] == "monitor" and party[1] is not None
    # and on the dashboard's list of active alarms: who, when
    hub.cli("user", "add", "--config", str(hub.config), "chief", "--role", "admin", "--password-stdin",
            stdin="chief password 123\n")
    chief = Console(hub)
    chief.login("chief", "chief password 123")
    page = chief.opener.open(f"{chief.base}/", timeout=10).read().decode()
    cell = re.sub(r"<[^>]+>", "", re.search(r'<td class="lan-ack">(.*?)</td>', page).group(1))
    assert re.fullmatch(r"monitor · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cell), cell
    for c in clients:
        c.loop_stop()
        c.disconnect()


def test_a_press_while_the_agent_restarts_becomes_one_alarm_when_it_is_back(pillar_env):  # noqa: F811
    hub, edge, sim = pillar_env
    edge.stop(signal.SIGKILL)  # a watchdog restart, an update: no goodbye
    time.sleep(0.5)
    sim.click()  # nobody acks it: the firmware keeps it and tries again with backoff
    time.sleep(3)
    assert _alarm_ids(hub) == []
    edge.start()
    wait_for(lambda: len(_alarm_ids(hub)) == 1, 20, "the press as an alarm once the agent is back")
    wait_for(lambda: sim.led == sf.Led.ALARM_RECEIVED, 10, "LED 'alarm received'")
    time.sleep(3)  # resends still in the line are recognised as the same press
    assert len(_alarm_ids(hub)) == 1 and edge._query("SELECT count(*) FROM events WHERE type = 'alarm'") == [(1,)]


def test_alarms_pressed_just_after_a_broker_restart_arrive_within_1s_of_both_reconnecting(pillar_env):  # noqa: F811
    hub, edge, sim = pillar_env
    broker = hub.mosquitto
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    time.sleep(30)
    broker.start()
    back = time.time()
    presses = []
    for delay in (0.5, 4.0):  # the merge window (3 s) apart: each press its own alarm
        time.sleep(max(0.0, back + delay - time.time()))
        presses.append(time.time())
        sim.click()
    hub_back = wait_for(lambda: hub.health().get("broker_connected") and time.time(), 30, "the hub reconnected")

    def edge_back():
        with hub.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT status, status_ts FROM devices WHERE id = :d"),
                               {"d": edge.device_id}).one()
        return row[1] if row[0] == "online" and row[1] > back else None
    edge_online = wait_for(edge_back, 30, "the pillar reconnected")
    wait_for(lambda: len(_alarm_ids(hub)) >= len(presses), 30, "every alarm on the hub")
    with hub.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT stored_at FROM events WHERE type = 'alarm' ORDER BY ts"))]
    assert len(stored) == len(presses)
    both = max(hub_back, edge_online)
    late = [s - max(both, p) for s, p in zip(stored, presses)]
    assert max(late) <= 1.0, f"stored {late} s after hub and pillar were both back"
