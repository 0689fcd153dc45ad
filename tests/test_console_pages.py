"""Every console page in Chinese and in English, in a real browser (Debian's Chromium), on a
real hub with 100 devices, an alarm from a pillar over MQTT and tickets moved through the
API: no identifier (a state, an action, a level, a type, a kind) as visible text on a Chinese
page, local times, names before codes; the devices page stays small. Screenshots of each page
are saved with the test artifacts."""

from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import sync_playwright

from hub import registry
from protocols.ids import EventIdGenerator
from protocols.messages import Event

from .helpers import Hub, device_id, wait_for
from .test_browser_hub import CHROMIUM_ARGS, SHOTS, _alarm
from .test_gridregistry import SAMPLE

PASSWORD = "a long console password"
GRID = "330102001001001"
#: identifiers of code and data that a Chinese page must show as labels, never as they are
IDENTIFIERS = {"reported", "dispatched", "accepted", "handling", "resolved", "verified", "returned", "archived",
               "merged", "void", "accept", "start", "resolve", "verify", "reject", "archive", "send_back",
               "transfer", "progress", "urge", "supervise", "escalate", "dispatch", "report", "lan_ack",
               "village", "town", "county", "urgent", "normal", "motion", "motion_update", "face", "alarm",
               "alarm_ack", "video_loss", "tamper", "camera-box", "alarm-pillar", "online", "offline", "unknown",
               "grid_workers", "village_monitor", "police_station", "town_centre", "county_centre", "fire",
               "maintenance", "general", "special", "up", "down", "stalled", "operator", "none"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|\+00:00")


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """A hub with the sample county, 100 devices (some silent, some with heartbeats and places),
    events, an alarm's ticket and a few tickets moved along."""
    folder = tmp_path_factory.mktemp("console")
    hub = Hub(folder / "hub", f"sqlite:///{folder / 'hub.db'}")
    (folder / "county.csv").write_text(SAMPLE, encoding="utf-8")
    hub.cli("registry", "import", "--config", str(hub.config), str(folder / "county.csv"))
    hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
            stdin=PASSWORD + "\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "admin")
    pillar = device_id(1, "134")
    password = hub.add_device(pillar, kind="alarm-pillar", grid=GRID)
    now = time.time()
    gen = EventIdGenerator()
    from hub import eventlog
    with hub.engine.begin() as conn:
        registry.put_device(conn, pillar, {"latitude": 30.2745, "longitude": 120.1555, "name": "祠堂报警柱"})
        for i in range(2, 101):
            registry.put_device(conn, device_id(i), {"kind": "camera-box", "name": f"村口{i}号", "grid_code": GRID,
                                                     "latitude": 30.271 + (i % 10) * 0.0006,
                                                     "longitude": 120.151 + (i // 10) * 0.0008,
                                                     "registered": True, "software": "0.9.0"})
            if i % 3:
                registry.set_heartbeat(conn, device_id(i), {"ts": now, "uptime_s": 3600, "disk_free_bytes": 12_000_000_000,
                                                            "outbox_depth": i % 7, "cameras": {"gate": 12.5, "lane": 0.0},
                                                            "camera_states": {"gate": "up", "lane": "stalled"}})
        eventlog.store_events(conn, [Event(id=gen.new(), device_id=device_id(2), type="motion", ts=now - 60, seq=1,
                                           priority=1, data={"camera": "gate", "zones": ["gate"]})])
    hub.start()
    _alarm(hub, pillar, password)
    wait_for(lambda: hub.get("/api/v1/tickets", token)[1], 20, "the alarm's ticket")
    status, made = hub.post("/api/v1/tickets", token, {"title": "路灯不亮", "grid_code": GRID, "category": "road"})
    assert status == 201, made
    tid = made["ticket"]["id"]
    for action in ("accept", "start"):
        assert hub.post(f"/api/v1/tickets/{tid}/actions/{action}", token)[0] == 200
    yield hub, tid, pillar
    hub.stop()


PAGES = [("dashboard", "/"), ("queue", "/queue"), ("queue-by-due", "/queue?sort=due"), ("ticket", "/tickets/{tid}"),
         ("alarm-ticket", "/tickets/1"), ("statistics", "/stats"), ("devices", "/devices"),
         ("device", "/devices/{pillar}"), ("map", "/map"), ("registry", "/registry"), ("wall", "/wall"),
         ("views", "/views"), ("not-found", "/tickets/999999")]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_console_page_speaks_the_language_with_local_times_and_names(county, lang):
    hub, tid, pillar = county
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = hub.base
    local_day = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/login")
        if lang == "en":
            page.click("#lang-switch")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for name, path in PAGES:
            resp = page.goto(base + path.format(tid=tid, pillar=pillar))
            assert resp.status == (404 if name == "not-found" else 200), (name, resp.status)
            page.screenshot(path=str(SHOTS / f"console-{lang}-{name}.png"), full_page=True)
            if lang == "zh" and name in ("dashboard", "devices"):  # the README's pictures (docs/hub-*.png)
                page.screenshot(path=str(SHOTS / f"readme-hub-{name}.png"))
            text = page.inner_text("body")
            assert not ISO_UTC.search(text), (name, ISO_UTC.search(text).group(0))
            if lang == "zh":
                words = set(re.findall(r"[A-Za-z][A-Za-z_-]*[A-Za-z]", text))
                assert not words & IDENTIFIERS, (name, sorted(words & IDENTIFIERS))
            else:
                assert not re.search(r"已分拨|已受理|处置中|区县|镇街|网格员|在线|离线", text), name
            if name == "devices":
                assert len(resp.body()) < 200 * 1024, len(resp.body())
                assert page.locator("#devices tbody tr").count() == 100
                assert "村口2号" in text and "小和山一网格" in text  # names, and the grid's name in the path
            if name == "ticket":
                assert local_day in text and "路灯不亮" in text and "小和山一网格" in text
                assert ("处置中" if lang == "zh" else "handling") in text
            if name == "alarm-ticket":
                assert ("一键报警" if lang == "zh" else "Panic button") in text
            if name == "map":
                assert page.locator("#map a.device").count() == 100 and page.locator("#legend li").count() == 5
                assert page.locator("#map a.device.alarm").count() == 1
        browser.close()


def test_the_devices_page_filters_by_state_kind_and_area(county):
    hub, _, pillar = county
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{hub.base}/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{hub.base}/")
        page.goto(f"{hub.base}/devices?kind=alarm-pillar")
        assert page.locator("#devices tbody tr").count() == 1
        assert page.locator(f"#devices tbody tr[data-device='{pillar}']").count() == 1
        page.goto(f"{hub.base}/devices")
        by_state = {s: page.locator(f"#devices tbody tr[data-liveness={s}]").count()
                    for s in ("online", "offline", "unknown")}
        assert sum(by_state.values()) == 100
        for state, n in by_state.items():
            page.goto(f"{hub.base}/devices?status={state}")
            assert page.locator("#devices tbody tr[data-device]").count() == n
            assert page.locator(f"#devices tbody tr[data-device]:not([data-liveness={state}])").count() == 0
        page.goto(f"{hub.base}/devices?area=330102002000")  # another town: none of these devices
        assert page.locator("#devices tbody tr[data-device]").count() == 0
        assert page.goto(f"{hub.base}/devices?area=999").status == 404
        browser.close()
