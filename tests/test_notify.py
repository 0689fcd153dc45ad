"""Five-party linkage delivered: a real HTTP receiver behind each party's webhook, signed bodies,
retries through failures with one idempotency key, acknowledgements per party, and an alarm
nobody accepts escalating to the town with a new notification."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Hub, device_id, wait_for

SECRET = "a webhook secret of some length"
GRID = "330102001001001"


class Receiver:
    """An SMS gateway or police system: answers 500 to the first ``fail`` requests, then 200."""

    def __init__(self, fail: int):
        self.fail = fail
        self.requests: list[tuple[int, str, dict, bool]] = []  # status given, key, body, signature ok
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                good = hmac.compare_digest(self.headers.get("X-Xueliang-Signature", ""), "sha256=" + hmac.new(
                    SECRET.encode(), body, hashlib.sha256).hexdigest())
                with outer.lock:
                    status = 500 if len(outer.requests) < outer.fail else 200
                    outer.requests.append((status, self.headers.get("Idempotency-Key"), json.loads(body), good))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for status, key, _, _ in self.requests:
                if status == 200:
                    out[key] = out.get(key, 0) + 1
            return out


def _hub(tmp_path, procs, db_url, receiver: Receiver) -> Hub:
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "hook-secret").write_text(SECRET)
    hub = Hub(tmp_path / "hub", db_url, extra={
        "notify": {"webhooks": [{"name": "gateway", "url": receiver.url, "secret_file": "hook-secret",
                                 "parties": ["grid_workers", "police_station", "town_centre", "county_centre"]}],
                   "retry_min_s": 0.2, "retry_max_s": 1},
        "dispatch": {"escalate_every_s": 1}})
    procs.append(hub)
    from .test_gridregistry import SAMPLE
    (hub.folder / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(hub.folder / "county.csv"))
    return hub


def _press(hub: Hub, dev: str, password: str) -> Event:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev)
    client.username_pw_set(dev, password)
    client.connect("127.0.0.1", hub.mqtt_port)
    client.loop_start()
    alarm = Event(id=EventIdGenerator().new(), device_id=dev, type="alarm", ts=time.time(), seq=1, priority=3,
                  data={"presses": 1})
    client.publish(topics.event(dev), encode_event(alarm), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    return alarm


def test_a_webhook_that_fails_3_times_then_recovers_gets_each_notification_once(tmp_path, procs, db_url):
    receiver = Receiver(fail=3)
    hub = _hub(tmp_path, procs, db_url, receiver)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid=GRID)
    hub.cli("user", "add", "--config", str(hub.config), "town", "--role", "operator", "--scope", "330102001000",
            "--password-stdin", stdin="town password 123\n")
    hub.cli("user", "add", "--config", str(hub.config), "worker", "--role", "grid_worker", "--scope", GRID,
            "--password-stdin", stdin="worker password 12\n")
    town = hub.cli("token", "create", "--config", str(hub.config), "town")
    worker = hub.cli("token", "create", "--config", str(hub.config), "worker")
    hub.start()
    alarm = _press(hub, dev, password)
    wait_for(lambda: len(receiver.delivered()) == 4, 30, "four parties delivered")
    time.sleep(1.5)  # nothing more comes
    assert sorted(receiver.delivered().values()) == [1, 1, 1, 1]
    assert sum(1 for r in receiver.requests if r[0] == 500) == 3
    assert all(r[3] for r in receiver.requests), "every body carries a good signature"
    bodies = {r[2]["party"]: r[2] for r in receiver.requests if r[0] == 200}
    assert set(bodies) == {"grid_workers", "police_station", "town_centre", "county_centre"}
    assert bodies["police_station"]["ticket"]["event_id"] == alarm.id
    assert bodies["police_station"]["scope_code"] == "330102001000"  # the town
    assert bodies["county_centre"]["device"]["name"] == f"dev {dev[-3:]}"
    # the ticket shows each party: notified, delivered (the village monitor's page has it at once)
    status, body = hub.get(f"/api/v1/tickets/{bodies['police_station']['ticket']['id']}", town)
    assert status == 200
    parties = {p["party"]: p for p in body["parties"]}
    assert set(parties) == {"grid_workers", "village_monitor", "police_station", "town_centre", "county_centre"}
    assert all(p["delivered_at"] for p in parties.values())
    assert parties["police_station"]["webhooks"][0]["attempts"] >= 1
    ticket_id = body["ticket"]["id"]
    # acknowledgements: the town's operator for the police station; a grid worker not for the town
    police = parties["police_station"]["id"]
    assert hub.post(f"/api/v1/tickets/{ticket_id}/parties/{parties['town_centre']['id']}/ack", worker)[0] == 404
    assert hub.post(f"/api/v1/tickets/{ticket_id}/parties/{police}/ack", town)[0] == 200
    status, body = hub.get(f"/api/v1/tickets/{ticket_id}", town)
    acked = {p["party"]: (p["acked_by"], bool(p["acked_at"])) for p in body["parties"]}
    assert acked["police_station"] == ("town", True) and acked["town_centre"] == (None, False)


def test_the_console_delivers_to_the_party_whose_user_sees_it(tmp_path, procs):
    from .test_alarm_loop import Console
    receiver = Receiver(fail=10**6)  # the webhook never takes anything: only the console delivers
    hub = _hub(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", receiver)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid=GRID)
    hub.cli("user", "add", "--config", str(hub.config), "town", "--role", "operator", "--scope", "330102001000",
            "--password-stdin", stdin="town password 123\n")
    hub.start()
    alarm = _press(hub, dev, password)

    def delivered():
        with hub.engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT n.target, n.delivered_at FROM notifications n JOIN tickets t "
                                             "ON t.id = n.ticket_id WHERE t.event_id = :e"), {"e": alarm.id}).all())
    wait_for(lambda: delivered(), 10, "the alarm's notifications")
    assert delivered()["town_centre"] is None
    town = Console(hub)
    town.login("town", "town password 123")
    town.opener.open(f"{town.base}/", timeout=10).read()  # the dashboard with the active alarm
    got = delivered()
    assert got["town_centre"] is not None  # the town centre saw it
    assert got["police_station"] is None and got["county_centre"] is None  # not through the town's screen
    assert got["village_monitor"] is not None  # on the pillar's own page from the start


def test_an_alarm_nobody_accepts_escalates_and_the_town_is_told(tmp_path, procs):
    receiver = Receiver(fail=0)
    hub = _hub(tmp_path, procs, f"sqlite:///{tmp_path / 'hub.db'}", receiver)
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid=GRID)
    hub.cli("sla", "set", "--config", str(hub.config), "--category", "alarm", "--severity", "urgent", "--level",
            "village", "--accept-min", "0.05", "--resolve-min", "60", "--wall-clock")
    hub.start()
    alarm = _press(hub, dev, password)

    def escalated():
        with hub.engine.connect() as conn:
            return conn.execute(sa.text("SELECT level FROM tickets WHERE event_id = :e"), {"e": alarm.id}).scalar() \
                == "town"
    wait_for(escalated, 20, "the unaccepted alarm escalated to the town")
    wait_for(lambda: any(r[2]["reason"] == "escalated:accept" and r[0] == 200 for r in receiver.requests), 10,
             "the town centre told of the escalation")
