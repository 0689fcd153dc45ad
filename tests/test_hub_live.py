"""Live video at the hub across a real NAT: the edge agent in a village namespace behind
masquerade, with no route from the county to it; hub, Mosquitto, coturn and Chromium in the county
namespace. The browser's offer goes through the hub and MQTT to the device; the media come back
through coturn (the selected ICE pair is a relay). Scope and the viewing record are checked on
the same set-up. Needs root, `ip`, `iptables` and coturn (`make test` installs them)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

from edge.camera.scenes import Mover, SceneSpec, write_video

from .helpers import Coturn, Edge, Hub, Mosquitto, device_id, free_port, wait_for
from .netlab import COUNTY_IP, NetLab
from .test_browser_hub import CHROMIUM_ARGS, SHOTS
from .test_gridregistry import SAMPLE

GRID_A, GRID_B = "330102001001001", "330102001001002"


@pytest.fixture
def lab():
    missing = [tool for tool in ("ip", "iptables", "turnserver") if shutil.which(tool) is None]
    assert os.geteuid() == 0 and not missing, f"this test needs root and {missing} (`make test` installs them)"
    lab = NetLab().up()
    yield lab
    lab.down()


def _chromium_in(lab: NetLab, folder: Path, ns: str) -> str:
    """A wrapper that starts Debian's Chromium inside ``ns`` (Playwright talks to it over pipes)."""
    wrapper = folder / "chromium-in-county"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(lab.prefix(ns))} /usr/bin/chromium \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_be_visible()


def _sessions(hub: Hub) -> list[dict]:
    with hub.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM view_sessions ORDER BY started_at"))]


def test_live_view_from_the_hub_crosses_the_nat_through_coturn(tmp_path, lab, procs):
    SHOTS.mkdir(parents=True, exist_ok=True)
    mosquitto = Mosquitto(tmp_path / "mosquitto", host=COUNTY_IP, lab=lab, netns=lab.county)
    turn_port = free_port()
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", mosquitto=mosquitto, host=COUNTY_IP, lab=lab,
              netns=lab.county, extra={"live": {"turn_urls": [f"turn:{COUNTY_IP}:{turn_port}?transport=udp"]}})
    procs.append(hub)
    conf = tmp_path / "turnserver.conf"
    out = hub.cli("turn-config", "--config", str(hub.config), "--out", str(conf), "--listen-ip", COUNTY_IP,
                  "--port", str(turn_port), "--log-file", str(tmp_path / "turn.log"))
    assert "wrote" in out and "static-auth-secret=" in conf.read_text()
    coturn = Coturn(tmp_path / "coturn", conf, COUNTY_IP, turn_port, lab=lab, netns=lab.county)
    procs.append(coturn)
    (tmp_path / "county.csv").write_text(SAMPLE)
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    dev_a = device_id(1, "131")
    dev_b = device_id(2, "131")
    password = hub.add_device(dev_a, grid=GRID_A)
    hub.add_device(dev_b, grid=GRID_B)
    for name, scope in (("li", GRID_A), ("wang", GRID_B)):
        hub.cli("user", "add", "--config", str(hub.config), name, "--role", "grid_worker", "--scope", scope,
                "--password-stdin", stdin=f"{name} grid worker pw\n")
    hub.cli("user", "add", "--config", str(hub.config), "chen", "--role", "admin", "--password-stdin",
            stdin="county admin pw 1\n")
    token_li = hub.cli("token", "create", "--config", str(hub.config), "li")
    token_wang = hub.cli("token", "create", "--config", str(hub.config), "wang")
    mosquitto.start()
    try:
        coturn.start()
        hub.start()
        folder = tmp_path / "edge"
        folder.mkdir()
        write_video(SceneSpec(640, 360, seconds=8, seed=3, movers=[Mover(1.0, 7.0, (-60, 150), (640, 120), (40, 80))]),
                    folder / "gate.mp4")
        edge = Edge(folder, dev_a, password, mosquitto.port, rate=0, broker_host=COUNTY_IP, lab=lab, netns=lab.village,
                    extra={"cameras": [{"name": "gate", "source": "gate.mp4"}], "log_level": "INFO"})
        procs.append(edge)
        edge.start()
        wait_for(lambda: "gate" in ((hub.get(f"/api/v1/devices/{dev_a}", token_li)[1].get("heartbeat") or {})
                                    .get("cameras") or {}), 60, "the device's camera on the hub")

        # scope: grid B's worker cannot see, start or signal grid A's camera (404, as if it did not exist)
        status, body = hub.post(f"/api/v1/devices/{dev_a}/live", token_wang, {"camera": "gate"})
        assert status == 404, body
        status, body = hub.post(f"/api/v1/devices/{dev_a}/live", token_li, {"camera": "nope"})
        assert status == 404, body

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium_in(lab, tmp_path, lab.county), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                _login(page, hub.base, "li", "li grid worker pw")
                page.goto(f"{hub.base}/devices/{dev_a}")
                tile = page.locator(".tile[data-camera=gate]")
                t0 = time.monotonic()
                tile.locator("button.play").click()
                expect(tile).to_have_attribute("data-state", "connected", timeout=30000)
                # frames arrive and keep arriving: the video's clock moves
                page.wait_for_function("() => { const v = document.querySelector('.tile video'); "
                                       "return v && v.videoWidth > 0 && v.currentTime > 1.0; }", timeout=30000)
                first_frame_ms = int(tile.get_attribute("data-first-frame-ms") or -1)
                assert 0 < first_frame_ms < 15000, first_frame_ms
                pair = page.evaluate("() => xlLive.selectedPair(xlLive.sessions[0])")
                assert pair is not None and pair["local"] == "relay", pair
                assert pair["relayAddress"] == COUNTY_IP and pair["bytesReceived"] > 10000, pair
                page.screenshot(path=str(SHOTS / "hub-device-live.png"), full_page=True)
                live = _sessions(hub)
                assert [(s["username"], s["device_id"], s["camera"], s["page"], s["outcome"]) for s in live] == \
                    [("li", dev_a, "gate", "device", "live")]
                assert live[0]["ended_at"] is None
                # grid B's worker on the page gets the plain 404 too
                other = browser.new_page()
                _login(other, hub.base, "wang", "wang grid worker pw")
                assert other.goto(f"{hub.base}/devices/{dev_a}").status == 404
                tile.locator("button.stop").click()
                wait_for(lambda: _sessions(hub)[0]["ended_at"] is not None, 10, "the session to end")
                watched = time.monotonic() - t0
                ended = _sessions(hub)[0]
                assert ended["outcome"] == "closed"
                assert 1.0 < ended["ended_at"] - ended["started_at"] <= watched + 1.0
                # the admin's viewing record shows it, with its duration, and exports it
                admin = browser.new_page()
                _login(admin, hub.base, "chen", "county admin pw 1")
                admin.goto(f"{hub.base}/views")
                row = admin.locator(f"#views tr[data-session='{ended['id']}']")
                expect(row).to_contain_text("li")
                expect(row).to_contain_text(dev_a)
                csv_text = admin.evaluate("() => fetch('/views.csv').then(r => r.text())")
                assert ended["id"] in csv_text and ",closed," in csv_text
                assert other.goto(f"{hub.base}/views").status == 403
            finally:
                browser.close()
        assert "Traceback" not in edge.output() and "Traceback" not in hub.output()
    finally:
        mosquitto.stop()
