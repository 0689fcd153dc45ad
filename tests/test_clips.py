"""Event clips at the hub, with real processes: a viewer asks for a motion event's clip, the edge
agent uploads it in pieces with its device credential; the agent killed halfway goes on after its
restart; the hub serves the clip with range requests to its area only; a clip over the cap and a
clip that does not match its checksum are refused with a clear error."""

from __future__ import annotations

import base64
import time
import hashlib
import json
import urllib.error
import urllib.request

import sqlalchemy as sa

from edge.camera.scenes import Mover, SceneSpec, write_video

from .helpers import Edge, Hub, device_id, wait_for
from .test_gridregistry import SAMPLE

GRID_A, GRID_B = "330102001001001", "330102001001002"


def _clip_row(hub: Hub, event_id: str) -> dict | None:
    with hub.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM clips WHERE event_id = :e"), {"e": event_id}).first()
    return dict(row._mapping) if row else None


def _get(hub: Hub, path: str, token: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(f"{hub.base}{path}", headers={"Authorization": f"Bearer {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _put_as_device(hub: Hub, dev: str, password: str, event_id: str, body: bytes, rng: str, sha: str):
    auth = base64.b64encode(f"{dev}:{password}".encode()).decode()
    req = urllib.request.Request(f"{hub.base}/api/v1/devices/{dev}/clips/{event_id}", data=body, method="PUT",
                                 headers={"Authorization": f"Basic {auth}", "Content-Range": rng,
                                          "X-Content-SHA256": sha, "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_clip_is_asked_for_uploaded_across_a_restart_and_served(tmp_path, procs):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    dev = device_id(1, "131")
    password = hub.add_device(dev, grid=GRID_A)
    for name, scope in (("li", GRID_A), ("wang", GRID_B)):
        hub.cli("user", "add", "--config", str(hub.config), name, "--role", "grid_worker", "--scope", scope,
                "--password-stdin", stdin=f"{name} grid worker pw\n")
    li = hub.cli("token", "create", "--config", str(hub.config), "li")
    wang = hub.cli("token", "create", "--config", str(hub.config), "wang")
    hub.start()
    folder = tmp_path / "edge"
    folder.mkdir()
    write_video(SceneSpec(320, 240, seconds=12, seed=5, movers=[Mover(1.0, 5.0, (-40, 60), (320, 70), (30, 55))]),
                folder / "gate.mp4")
    # 512 kbit/s: pieces of 64 KiB, one a second, so the upload is still going when the agent is killed
    edge = Edge(folder, dev, password, hub.mqtt_port, rate=0, hub_url=hub.base, upload_kbps=512,
                extra={"cameras": [{"name": "gate", "source": "gate.mp4", "faces": {"enabled": False}}]})
    procs.append(edge)
    edge.start()
    rows = wait_for(lambda: edge._query("SELECT m.event_id, m.path, m.bytes FROM media m JOIN events e "
                                        "ON e.id = m.event_id WHERE m.kind = 'clip' AND e.synced_at IS NOT NULL"),
                    90, "a motion event with a clip, synced to the hub")
    event_id, rel, size = rows[0]
    clip = (folder / "media" / rel).read_bytes()
    assert size == len(clip) > 4 * 64 * 1024, size
    # grid B's worker cannot ask for it, see it or fetch it
    assert hub.post(f"/api/v1/events/{event_id}/clip", wang)[0] == 404
    assert _get(hub, f"/api/v1/events/{event_id}/clip", wang)[0] == 404
    assert _get(hub, f"/api/v1/events/{event_id}/clip", li)[0] == 404  # not at the hub yet
    status, body = hub.post(f"/api/v1/events/{event_id}/clip", li)
    assert status == 202 and body["state"] == "requested", body

    # killed halfway through the upload
    wait_for(lambda: (_clip_row(hub, event_id) or {}).get("bytes_received", 0) >= 2 * 64 * 1024, 60,
             "the upload to be under way")
    edge.kill9()
    held = _clip_row(hub, event_id)
    assert held["state"] == "uploading" and 0 < held["bytes_received"] < size, held
    edge.start()
    wait_for(lambda: (_clip_row(hub, event_id) or {}).get("state") == "complete", 120, "the upload to complete")
    row = _clip_row(hub, event_id)
    assert row["bytes_total"] == size and row["sha256"] == hashlib.sha256(clip).hexdigest()

    # served whole and by range, to the event's area
    status, data, headers = _get(hub, f"/api/v1/events/{event_id}/clip", li)
    assert status == 200 and data == clip and headers["Content-Type"] == "video/mp4"
    status, data, headers = _get(hub, f"/api/v1/events/{event_id}/clip", li, {"Range": "bytes=100-1099"})
    assert status == 206 and data == clip[100:1100] and headers["Content-Range"] == f"bytes 100-1099/{size}"
    status, body = hub.get(f"/api/v1/events/{event_id}/clip/status", li)
    assert body["state"] == "complete" and body["bytes_received"] == size

    # the device's own credential only, and only for its own events
    status, body = _put_as_device(hub, dev, "wrong password", event_id, b"x", "bytes 0-0/1", "0" * 64)
    assert status == 401
    # a whole file that does not match its checksum is not kept
    with hub.engine.connect() as conn:
        other = conn.execute(sa.text("SELECT id FROM events WHERE device_id = :d AND id != :e LIMIT 1"),
                             {"d": dev, "e": event_id}).scalar()
    assert other is not None
    status, body = _put_as_device(hub, dev, password, other, clip[:1000], "bytes 0-999/1000", "b" * 64)
    assert status == 422 and "SHA-256" in body["error"]["message"], body

    # the hub's cap lowered under the clip's size: the device's upload is refused at its first piece,
    # and both ends say why
    hub.stop()
    cfg = json.loads(hub.config.read_text())
    cfg["media"] = {"max_clip_mb": 0.5}
    hub.config.write_text(json.dumps(cfg))
    hub.start()
    wait_for(lambda: edge._query("SELECT count(*) FROM media WHERE kind = 'clip' AND bytes > 524288 AND "
                                 f"event_id != '{event_id}'") not in ([], [(0,)]), 90, "a second clip over 0.5 MB")
    [(big, big_size)] = edge._query("SELECT event_id, bytes FROM media WHERE kind = 'clip' AND bytes > 524288 "
                                    f"AND event_id != '{event_id}' LIMIT 1")
    wait_for(lambda: hub.get(f"/api/v1/events/{big}/clip/status", li)[0] == 200, 30, "the second event on the hub")
    assert hub.post(f"/api/v1/events/{big}/clip", li)[0] == 202
    row = wait_for(lambda: (lambda r: r if r and r["state"] == "refused" else None)(_clip_row(hub, big)), 30,
                   "the over-size clip to be refused")
    assert "max_clip_mb" in row["error"] and str(big_size) in row["error"], row
    [(state, reason)] = wait_for(lambda: edge._query(f"SELECT state, reason FROM uploads WHERE event_id = '{big}' "
                                                     "AND state = 'refused'"), 10, "the device to record it")
    assert "max_clip_mb" in reason, reason
    assert "Traceback" not in hub.output() and "Traceback" not in edge.output()


def test_an_alarms_pre_alarm_clip_reaches_the_hub_unasked(tmp_path, procs):
    from edge.pillar.simulator import PillarSim

    import av

    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar", grid=GRID_A)
    hub.cli("user", "add", "--config", str(hub.config), "li", "--role", "grid_worker", "--scope", GRID_A,
            "--password-stdin", stdin="li grid worker pw\n")
    li = hub.cli("token", "create", "--config", str(hub.config), "li")
    hub.start()
    sim = PillarSim(tmp_path / "ttyPILLAR", heartbeat_s=0.5)
    sim.start()
    try:
        folder = tmp_path / "edge"
        folder.mkdir()
        write_video(SceneSpec(320, 240, seconds=20, seed=7), folder / "pillar.mp4")  # a quiet scene: no motion
        edge = Edge(folder, dev, password, hub.mqtt_port, rate=0, kind="alarm-pillar", hub_url=hub.base,
                    extra={"pillar": {"port": str(tmp_path / "ttyPILLAR"), "merge_window_s": 0},
                           "cameras": [{"name": "pillar", "source": "pillar.mp4", "faces": {"enabled": False},
                                        "clips": {"pre_roll_s": 3, "post_roll_s": 2}}]})
        procs.append(edge)
        edge.start()
        wait_for(lambda: "pillar" in ((hub.get(f"/api/v1/devices/{dev}", li)[1].get("heartbeat") or {})
                                      .get("cameras") or {}), 60, "the pillar's camera on the hub")
        time.sleep(4)  # the camera's pre-roll fills
        sim.click()
        with hub.engine.connect() as conn:
            alarm_id = wait_for(lambda: conn.execute(sa.text("SELECT id FROM events WHERE type = 'alarm'")).scalar(),
                                10, "the alarm on the hub")
        # nobody asked: the device sends the alarm's clip by itself
        row = wait_for(lambda: (lambda r: r if r and r["state"] == "complete" else None)(_clip_row(hub, alarm_id)),
                       60, "the pre-alarm clip at the hub")
        assert row["requested_by"] == f"{dev}@device"
        status, data, headers = _get(hub, f"/api/v1/events/{alarm_id}/clip", li)
        assert status == 200 and len(data) == row["bytes_total"]
        clip = tmp_path / "alarm.mp4"
        clip.write_bytes(data)
        with av.open(str(clip)) as container:
            seconds = float(container.duration or 0) / av.time_base
        assert 3.5 <= seconds <= 7.0, seconds  # about 3 s before the press and 2 s after
        # the alarm's ticket page plays it
        from playwright.sync_api import expect, sync_playwright

        from .test_browser_hub import CHROMIUM_ARGS
        with hub.engine.connect() as conn:
            ticket_id = conn.execute(sa.text("SELECT id FROM tickets WHERE event_id = :e"), {"e": alarm_id}).scalar()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{hub.base}/login")
                page.fill("input[name=username]", "li")
                page.fill("input[name=password]", "li grid worker pw")
                page.click("button[type=submit]")
                page.goto(f"{hub.base}/tickets/{ticket_id}")
                expect(page.locator("#clip .state")).to_have_text("已到中心")
                page.wait_for_function("() => document.querySelector('#clip video').duration > 3", timeout=15000)
            finally:
                browser.close()
    finally:
        sim.stop()
