"""The device's LAN page in a real browser (Debian's Chromium driven by Playwright), against a
real alarm pillar agent: its camera plays a generated scene, its MCU is simulated on a pty
pair, it syncs to a real hub over the hub's embedded broker."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from edge.pillar.simulator import PillarSim
from edge.camera.scenes import Mover, SceneSpec, write_video
from protocols import serial as sf

from .helpers import BIN, Edge, Hub, device_id, free_port, wait_for
from .test_browser_hub import SHOTS, browser  # noqa: F401  (the fixture)

PASSWORD = "correct horse battery"

# the scene: quiet, a person crossing (motion + face), quiet again; it loops
SCENE = SceneSpec(640, 360, seconds=8, seed=31, movers=[Mover(3.0, 6.0, (-60, 170), (640, 150), (50, 120), face=40)])

FRAME_STATS = """(sel) => {
  const v = document.querySelector(sel);
  const c = document.createElement('canvas'); c.width = 64; c.height = 36;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 36);
  const d = g.getImageData(0, 0, 64, 36).data; let s = 0, s2 = 0, n = d.length / 4;
  for (let i = 0; i < d.length; i += 4) { const y = (d[i] + d[i + 1] + d[i + 2]) / 3; s += y; s2 += y * y; }
  return {t: v.currentTime, width: v.videoWidth, mean: s / n, sd: Math.sqrt(s2 / n - (s / n) ** 2)};
}"""


@pytest.fixture
def lan(tmp_path, procs):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    hub.start()
    dev = device_id(3, "134")
    password = hub.add_device(dev, kind="alarm-pillar")
    folder = tmp_path / "edge"
    write_video(SCENE, folder / "pillar.mp4")
    sim = PillarSim(tmp_path / "ttyPILLAR", heartbeat_s=0.5)
    sim.start()
    port = free_port()
    edge = Edge(folder, dev, password, hub.mqtt_port, rate=0, kind="alarm-pillar", extra={
        "pillar": {"port": str(tmp_path / "ttyPILLAR"), "merge_window_s": 1},
        "cameras": [{"name": "pillar", "source": "pillar.mp4", "motion": {"end_s": 1.0}}],
        "web": {"host": "127.0.0.1", "port": port, "ice_addresses": ["127.0.0.1"]}})
    for name, role in (("monitor", "operator"), ("secretary", "viewer")):
        subprocess.run([str(BIN / "xl-edge"), "user", "add", "--config", str(edge.config), name, "--role", role,
                        "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    procs.append(edge)
    edge.start()
    wait_for(lambda: sim.led == sf.Led.IDLE and any(t == sf.MsgType.VOLUME for _, t, _ in sim.received), 20,
             "the agent to open the pillar's port")
    yield hub, edge, sim, f"http://127.0.0.1:{port}"
    sim.stop()


def login(page, base: str, name: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("#login-submit")


def test_monitor_logs_in_watches_live_sees_events_and_acknowledges_an_alarm(lan, browser):  # noqa: F811
    hub, edge, sim, base = lan
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    login(page, base, "monitor", "not the password")
    expect(page.locator("#login-error")).to_be_visible()
    assert page.url.startswith(base + "/login")
    page.screenshot(path=str(SHOTS / "lan-login-refused.png"))

    login(page, base, "monitor", PASSWORD)
    expect(page.locator("#video-pillar")).to_be_visible()
    # live video: WebRTC connects, time advances, frames are not black
    wait_for(lambda: page.evaluate(FRAME_STATS, "#video-pillar")["width"] > 0, 20, "live video frames")
    first = page.evaluate(FRAME_STATS, "#video-pillar")
    time.sleep(2)
    later = page.evaluate(FRAME_STATS, "#video-pillar")
    assert later["t"] > first["t"] + 1.0, (first, later)
    assert later["mean"] > 30 and later["sd"] > 10, later  # the textured scene, not a black picture
    assert page.evaluate("window.xlPeers.pillar.connectionState") == "connected"
    expect(page.locator("#h-camera-pillar")).to_contain_text("1")  # one viewer

    # a new event appears without reload once the person crosses
    page.evaluate("window.xlMarker = 1")
    expect(page.locator("#events li.new[data-type=motion]").first).to_be_visible(timeout=30000)
    expect(page.locator("#events li.new[data-type=face]").first).to_be_visible(timeout=30000)
    assert page.evaluate("window.xlMarker") == 1  # the same page: no reload
    page.screenshot(path=str(SHOTS / "lan-live-and-events.png"))

    # the pillar is pressed: banner; acknowledge it from the page
    sim.click()
    banner = page.locator("#alarms .banner.waiting")
    expect(banner).to_be_visible(timeout=10000)
    page.screenshot(path=str(SHOTS / "lan-alarm.png"))
    banner.locator("button.ack").click()
    expect(banner).to_have_count(0, timeout=10000)
    expect(page.locator("#alarms .banner.help-coming .state")).to_contain_text("monitor")
    wait_for(lambda: sim.led == sf.Led.HELP_COMING, 10, "the pillar LED to show help coming")
    with hub.engine.connect() as conn:
        import sqlalchemy as sa
        wait_for(lambda: conn.execute(sa.text("SELECT count(*) FROM events WHERE type = 'alarm_ack'")).scalar(),
                 20, "the acknowledgement on the hub")
        acks = conn.execute(sa.text("SELECT data FROM events WHERE type = 'alarm_ack'")).fetchall()
    ack = json.loads(acks[0][0]) if isinstance(acks[0][0], str) else acks[0][0]
    assert ack["by"] == "monitor" and ack["via"] == "lan"

    # language: Chinese by default, English by the switch, and back
    expect(page.locator("#logout")).to_have_text("退出")
    page.click("#lang-switch")
    expect(page.locator("#logout")).to_have_text("Log out")
    expect(page.locator("h2").first).to_have_text("Live video")
    page.screenshot(path=str(SHOTS / "lan-english.png"))
    page.click("#lang-switch")
    expect(page.locator("#logout")).to_have_text("退出")


def test_a_viewer_cannot_acknowledge_and_mjpeg_is_the_fallback(lan, browser):  # noqa: F811
    hub, edge, sim, base = lan
    page = browser.new_page()
    login(page, base, "secretary", PASSWORD)
    sim.click()
    banner = page.locator("#alarms .banner")
    expect(banner).to_be_visible(timeout=10000)
    assert banner.locator("button.ack").count() == 0  # viewers watch, operators act
    status = page.evaluate("""async () => { const id = document.querySelector('#alarms .banner').id.slice(6);
        const r = await fetch('/api/alarms/' + id + '/ack', {method: 'POST', headers: {'X-CSRF-Token':
        JSON.parse(document.getElementById('xl-config').textContent).csrf}}); return r.status; }""")
    assert status == 403
    # the MJPEG fallback serves real JPEG frames
    jpeg = page.evaluate("""async () => { const r = await fetch('/live/pillar.mjpg'); const reader = r.body.getReader();
        let got = new Uint8Array(0); while (got.length < 4000) { const {value} = await reader.read();
        const n = new Uint8Array(got.length + value.length); n.set(got); n.set(value, got.length); got = n; }
        reader.cancel(); const s = Array.from(got.slice(0, 200)).map(c => String.fromCharCode(c)).join('');
        const i = got.findIndex((b, k) => b === 0xff && got[k + 1] === 0xd8); return {head: s.slice(0, 60), soi: i}; }""")
    assert jpeg["head"].startswith("--frame") and "image/jpeg" in jpeg["head"] and jpeg["soi"] > 0


def test_the_hubs_accept_and_close_reach_the_lan_banners(lan, browser):  # noqa: F811
    hub, edge, sim, base = lan
    hub.cli("user", "add", "--config", str(hub.config), "chief", "--role", "admin", "--password-stdin",
            stdin="chief password 123\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "chief")
    page = browser.new_page()
    login(page, base, "monitor", PASSWORD)
    expect(page.locator("#logout")).to_be_visible()
    sim.click()
    sim.click()  # within the merge window: the same alarm, one banner with two presses
    expect(page.locator("#alarms .banner.waiting")).to_have_count(1, timeout=10000)
    for n in (2, 3):  # two more alarms
        time.sleep(1.5)
        sim.click()
        expect(page.locator("#alarms .banner.waiting")).to_have_count(n, timeout=10000)
    expect(page.locator("#ack-all")).to_be_visible()

    def alarm_ids():
        with hub.engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT id FROM events WHERE type = 'alarm' ORDER BY id")]
    wait_for(lambda: len(alarm_ids()) == 3, 10, "the alarms on the hub")
    first, older, newer = alarm_ids()
    # newest first; the centre accepts the newer one: its banner turns to "中心已受理" at once
    assert page.locator("#alarms .banner").first.get_attribute("id") == f"alarm-{newer}"
    assert hub.post(f"/api/v1/alarms/{newer}/accept", token)[0] == 202
    accepted = page.locator(f"#alarm-{newer}")
    expect(accepted).to_have_class(re.compile("help-coming"), timeout=5000)
    expect(accepted.locator(".state")).to_contain_text("中心已受理")
    page.screenshot(path=str(SHOTS / "lan-alarm-accepted.png"))
    # the village monitor acknowledges what is left with one button
    page.click("#ack-all")
    expect(page.locator("#alarms .banner.waiting")).to_have_count(0, timeout=5000)
    for alarm in (first, older):
        expect(page.locator(f"#alarm-{alarm} .state")).to_contain_text("monitor")
    # the centre closes the accepted alarm's ticket: its banner leaves the page
    with hub.engine.connect() as conn:
        ticket = conn.execute(sa.text("SELECT id FROM tickets WHERE event_id = :a"), {"a": newer}).scalar()
    for action in ("start", "resolve"):
        assert hub.post(f"/api/v1/tickets/{ticket}/actions/{action}", token)[0] == 200
    expect(accepted).to_have_count(0, timeout=5000)
    expect(page.locator(f"#alarm-{older}")).to_have_count(1)
