"""Live sessions through the hub's API on loopback: a real hub (embedded broker), coturn, an edge
agent with a camera, and a real WebRTC peer (aiortc) making the offers. Checks what the NAT test
does not: credentials, the device's and the hub's viewer limits, another user's session, keep-
alives running out, a device that is away, and the record of each session."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import sqlalchemy as sa
from aiortc import RTCPeerConnection

from edge.camera.scenes import SceneSpec, write_video

from .helpers import Coturn, Edge, Hub, device_id, free_port, wait_for
from .test_gridregistry import SAMPLE

GRID_A = "330102001001001"


def _offer() -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def _rows(hub: Hub) -> dict[str, dict]:
    with hub.engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM view_sessions"))}


def test_sessions_credentials_limits_lapses_and_the_record(tmp_path, procs):
    turn_port = free_port()
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", extra={"live": {
        "turn_urls": [f"turn:127.0.0.1:{turn_port}?transport=udp"], "viewers_per_device": 2,
        "keepalive_timeout_s": 3, "answer_timeout_s": 3}})
    procs.append(hub)
    conf = tmp_path / "turnserver.conf"
    hub.cli("turn-config", "--config", str(hub.config), "--out", str(conf), "--listen-ip", "127.0.0.1",
            "--port", str(turn_port), "--log-file", str(tmp_path / "turn.log"))
    coturn = Coturn(tmp_path / "coturn", conf, "127.0.0.1", turn_port)
    procs.append(coturn)
    coturn.start()
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    dev = device_id(1, "131")
    password = hub.add_device(dev, grid=GRID_A)
    hub.cli("user", "add", "--config", str(hub.config), "li", "--role", "grid_worker", "--scope", GRID_A,
            "--password-stdin", stdin="li grid worker pw\n")
    hub.cli("user", "add", "--config", str(hub.config), "chen", "--role", "operator", "--scope", "330102000000", "--password-stdin",
            stdin="county operator pw\n")
    li = hub.cli("token", "create", "--config", str(hub.config), "li")
    chen = hub.cli("token", "create", "--config", str(hub.config), "chen")
    hub.start()
    folder = tmp_path / "edge"
    folder.mkdir()
    write_video(SceneSpec(320, 240, seconds=4, seed=2), folder / "gate.mp4")
    edge = Edge(folder, dev, password, hub.mqtt_port, rate=0, hub_viewers_max=1,
                extra={"cameras": [{"name": "gate", "source": "gate.mp4"}]})
    procs.append(edge)
    edge.start()
    wait_for(lambda: "gate" in ((hub.get(f"/api/v1/devices/{dev}", li)[1].get("heartbeat") or {})
                                .get("cameras") or {}), 60, "the camera on the hub")

    # a session: TURN credentials in the REST API scheme, valid for credential_ttl_s, signed with
    # the shared secret coturn has
    status, s1 = hub.post(f"/api/v1/devices/{dev}/live", li, {"camera": "gate", "page": "device", "reason": "巡查"})
    assert status == 201, s1
    [server] = s1["ice_servers"]
    assert server["urls"] == [f"turn:127.0.0.1:{turn_port}?transport=udp"] and s1["ice_transport_policy"] == "relay"
    expiry, label = server["username"].split(":")
    assert label == "li" and 3000 < int(expiry) - time.time() <= 3600
    secret = (hub.folder / "turn_secret").read_text().strip()
    assert f"static-auth-secret={secret}" in conf.read_text()
    assert server["credential"] == base64.b64encode(
        hmac.new(secret.encode(), server["username"].encode(), hashlib.sha1).digest()).decode()

    status, answer = hub.post(f"/api/v1/live/{s1['session']}/offer", li, {"sdp": _offer()}, timeout=10)
    assert status == 200, answer
    assert answer["sdp"].startswith("v=0") and "m=video" in answer["sdp"]
    assert " typ host" not in answer["sdp"] and " typ relay" in answer["sdp"]  # no village LAN address
    assert _rows(hub)[s1["session"]]["outcome"] == "live"

    # the device sends one hub viewer (sync.hub_viewers_max: 1): a second is refused by it
    status, s2 = hub.post(f"/api/v1/devices/{dev}/live", chen, {"camera": "gate"})
    assert status == 201, s2
    status, body = hub.post(f"/api/v1/live/{s2['session']}/offer", chen, {"sdp": _offer()}, timeout=10)
    assert status == 409 and body["error"]["code"] == "device_refused" and "limit" in body["error"]["message"]
    assert _rows(hub)[s2["session"]]["outcome"] == "refused"
    # another user's session is a 404, whatever is asked of it
    for action, payload in (("offer", {"sdp": _offer()}), ("keepalive", None), ("close", None)):
        status, body = hub.post(f"/api/v1/live/{s2['session']}/{action}", li, payload)
        assert status == 404, (action, body)
    # the hub's limit (two viewers per device) names who is watching
    status, s3 = hub.post(f"/api/v1/devices/{dev}/live", chen, {"camera": "gate"})
    assert status == 201
    status, body = hub.post(f"/api/v1/devices/{dev}/live", chen, {"camera": "gate"})
    assert status == 409 and body["error"]["code"] == "viewers_limit", body
    assert "li" in body["error"]["message"] and "chen" in body["error"]["message"]

    # no keep-alives: the sessions lapse at their last keep-alive, and the device drops the viewer
    # (otherwise its one-viewer limit would refuse the next offer)
    hub.post(f"/api/v1/live/{s1['session']}/keepalive", li)
    wait_for(lambda: _rows(hub)[s1["session"]]["ended_at"] is not None, 15, "the session to lapse")
    r1 = _rows(hub)[s1["session"]]
    assert r1["outcome"] == "lapsed" and r1["ended_at"] == r1["last_seen_at"]
    status, s5 = hub.post(f"/api/v1/devices/{dev}/live", li, {"camera": "gate"})
    assert status == 201, s5
    status, answer = hub.post(f"/api/v1/live/{s5['session']}/offer", li, {"sdp": _offer()}, timeout=10)
    assert status == 200, answer
    status, _ = hub.post(f"/api/v1/live/{s5['session']}/close", li)
    assert status == 204
    r5 = _rows(hub)[s5["session"]]
    assert r5["outcome"] == "closed" and r5["ended_at"] >= r5["started_at"]
    status, body = hub.post(f"/api/v1/live/{s5['session']}/offer", li, {"sdp": _offer()})
    assert status == 409 and body["error"]["code"] == "session_used"

    # a device that is away: the offer waits answer_timeout_s, then 504, recorded as failed
    edge.stop()
    status, s6 = hub.post(f"/api/v1/devices/{dev}/live", li, {"camera": "gate"})
    assert status == 201
    t0 = time.monotonic()
    status, body = hub.post(f"/api/v1/live/{s6['session']}/offer", li, {"sdp": _offer()}, timeout=10)
    assert status == 504 and body["error"]["code"] == "device_timeout" and time.monotonic() - t0 < 6
    assert _rows(hub)[s6["session"]]["outcome"] == "failed"
    # bad input: not an SDP, a camera name out of pattern, an unknown page
    status, s7 = hub.post(f"/api/v1/devices/{dev}/live", li, {"camera": "gate"})
    for body, field in (({"sdp": "hello"}, "sdp"), ({"sdp": "v=0\r\n\x07"}, "control")):
        status, err = hub.post(f"/api/v1/live/{s7['session']}/offer", li, body)
        assert status == 400 and field in err["error"]["message"], err
    for payload in ({"camera": "../x"}, {"camera": "gate", "page": "kiosk"}, {"camera": "gate", "quality": "4k"}):
        status, err = hub.post(f"/api/v1/devices/{dev}/live", li, payload)
        assert status == 400, (payload, err)
    # a pillar has one speaker: the second operator who asks to talk watches only, told who talks
    assert hub.post(f"/api/v1/live/{s7['session']}/close", li)[0] == 204
    status, t1 = hub.post(f"/api/v1/devices/{dev}/live", chen, {"camera": "gate", "talk": True})
    assert status == 201 and t1["talk"] is True and t1["talking"] == [], t1
    status, t2 = hub.post(f"/api/v1/devices/{dev}/live", li, {"camera": "gate", "talk": True,
                                                              "reason": "=HYPERLINK(\"http://x\")"})
    assert status == 201 and t2["talk"] is False and t2["talking"] == ["chen"], t2
    assert [r["talk"] for r in map(_rows(hub).get, (t1["session"], t2["session"]))] == [True, False]
    # every session has its row, with a duration
    rows = _rows(hub)
    assert {s["session"] for s in (s1, s2, s3, s5, s6, s7, t1, t2)} <= set(rows)
    assert all(r["username"] in ("li", "chen") and r["device_id"] == dev for r in rows.values())
    # the record's CSV (admins) keeps a reason that looks like a formula as text
    hub.cli("user", "add", "--config", str(hub.config), "zhao", "--role", "admin", "--password-stdin",
            stdin="county admin pw 2\n")
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{hub.base}/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    opener.open(f"{hub.base}/login", data=urllib.parse.urlencode(
        {"username": "zhao", "password": "county admin pw 2", "csrf_token": csrf}).encode())
    csv_text = opener.open(f"{hub.base}/views.csv").read().decode()
    assert "'=HYPERLINK" in csv_text and t2["session"] in csv_text
    assert "Traceback" not in hub.output() and "Traceback" not in edge.output()


def test_a_reason_is_required_when_the_config_says_so(tmp_path, procs):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", extra={"live": {
        "turn_urls": ["turn:127.0.0.1:3478?transport=udp"], "require_reason": True}})
    procs.append(hub)
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    dev = device_id(1, "131")
    hub.add_device(dev, grid=GRID_A)
    hub.cli("user", "add", "--config", str(hub.config), "chen", "--role", "operator", "--scope", "330102000000", "--password-stdin",
            stdin="county operator pw\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "chen")
    hub.start()
    with hub.engine.begin() as conn:  # the device's heartbeat named its camera
        conn.execute(sa.text("UPDATE devices SET heartbeat = :hb WHERE id = :d"),
                     {"hb": '{"cameras": {"gate": 12.0}}', "d": dev})
    status, body = hub.post(f"/api/v1/devices/{dev}/live", token, {"camera": "gate"})
    assert status == 400 and body["error"]["code"] == "reason_required", body
    status, body = hub.post(f"/api/v1/devices/{dev}/live", token, {"camera": "gate", "reason": "  "})
    assert status == 400
    status, body = hub.post(f"/api/v1/devices/{dev}/live", token, {"camera": "gate", "reason": "核警 #12"})
    assert status == 201, body
    with hub.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT reason FROM view_sessions")).scalar() == "核警 #12"
