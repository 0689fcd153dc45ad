"""The county console in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import expect, sync_playwright

from protocols import topics
from protocols.ids import EventIdGenerator
from protocols.messages import Event, encode_event

from .helpers import Hub, device_id
from .test_gridregistry import SAMPLE

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("XL_ARTIFACTS", ROOT / "artifacts")) / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def _alarm(hub: Hub, dev: str, password: str) -> str:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="browser-test-pillar")
    client.username_pw_set(dev, password)
    client.connect("127.0.0.1", hub.mqtt_port)
    client.loop_start()
    ev = Event(id=EventIdGenerator().new(), device_id=dev, type="alarm", ts=time.time(), seq=1, priority=3,
               data={"source": "button", "presses": 1})
    client.publish(topics.event(dev), encode_event(ev), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    return ev.id


def test_alarm_appears_live_then_is_accepted_and_resolved_from_the_queue(tmp_path, procs, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    procs.append(hub)
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    hub.cli("user", "add", "--config", str(hub.config), "liu", "--role", "operator", "--scope", "330102001000",
            "--password-stdin", stdin="town operator pw\n")
    dev = device_id(1, "134")
    password = hub.add_device(dev, kind="alarm-pillar")
    hub.cli("registry", "import", "--config", str(hub.config), str(_device_csv(tmp_path, dev)))
    hub.start()
    base = f"http://127.0.0.1:{hub.web_port}"
    page = browser.new_page()
    page.goto(base + "/")
    page.fill("input[name=username]", "liu")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("input[name=username]", "liu")
    page.fill("input[name=password]", "town operator pw")
    page.click("button[type=submit]")
    expect(page.locator("h2")).to_have_text("总览")
    assert page.locator("#alarms tbody tr").count() == 0
    _alarm(hub, dev, password)
    # the new alarm shows up without a reload (Server-Sent Events)
    expect(page.locator("#alarms tbody tr.new-alarm")).to_have_count(1, timeout=15000)
    page.screenshot(path=str(SHOTS / "hub-dashboard-alarm.png"), full_page=True)
    page.goto(base + "/stats")
    before = page.locator("#handled-rate").inner_text()
    page.goto(base + "/queue")
    for action, state in (("accept", "已受理"), ("start", "处置中"), ("resolve", "处置完毕")):
        page.locator(f"#queue tbody tr >> button[data-action={action}]").first.click()
        expect(page.locator("#queue tbody tr .state").first).to_have_text(state)
    page.screenshot(path=str(SHOTS / "hub-queue-resolved.png"), full_page=True)
    page.goto(base + "/stats")
    after = page.locator("#handled-rate").inner_text()
    assert (before, after) == ("0.0%", "100.0%")
    page.click("#lang-switch")
    expect(page.locator("h2")).to_have_text("Statistics")
    page.screenshot(path=str(SHOTS / "hub-stats-en.png"), full_page=True)


def _device_csv(tmp_path: Path, dev: str) -> Path:
    path = tmp_path / "device.csv"
    path.write_text("record,code,name,parent_code,kind,households,population,phone,role,scope_code,latitude,"
                    f"longitude,model,boundary\ndevice,{dev},村委会报警柱,330102001001001,alarm-pillar,,,,,,30.27,"
                    "120.15,XL-AP1,\n")
    return path
