"""Live video and talk-back at the hub across a real NAT: the edge agent (an alarm pillar with a
camera, a microphone and a speaker) in a village namespace behind masquerade, with no route from
the county to it; hub, Mosquitto, coturn and Chromium in the county namespace. The browser's offer
goes through the hub and MQTT to the device; the media come back through coturn (the selected ICE
pair is a relay). Scope and the viewing record are checked on the same set-up. Needs root, `ip`,
`iptables` and coturn (`make test` installs them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

from edge.camera.scenes import Mover, SceneSpec, write_video

from .helpers import Edge, Hub, county_with_relay, device_id, wait_for
from .netlab import COUNTY_IP, NetLab
from .test_browser_hub import CHROMIUM_ARGS, SHOTS
from .test_gridregistry import SAMPLE

GRID_A, GRID_B = "330102001001001", "330102001001002"
OPERATOR_HZ, PILLAR_HZ = 440.0, 660.0  # the operator's fake microphone, the pillar's microphone
RATE = 48000


def write_tone(path: Path, hz: float, seconds: float, amplitude: float = 0.5) -> None:
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        raw, rate, channels = w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
    whole = len(raw) // (2 * channels) * 2 * channels
    samples = np.frombuffer(raw[:whole], "<i2").astype(np.float64)
    return samples.reshape(-1, channels).mean(axis=1), rate


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


@dataclass
class County:
    lab: NetLab
    hub: Hub
    edge: Edge
    dev_a: str
    folder: Path
    tokens: dict


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    missing = [tool for tool in ("ip", "iptables", "turnserver") if shutil.which(tool) is None]
    assert os.geteuid() == 0 and not missing, f"these tests need root and {missing} (`make test` installs them)"
    tmp = tmp_path_factory.mktemp("county")
    lab = NetLab().up()
    with contextlib.ExitStack() as stack:
        stack.callback(lab.down)
        mosquitto, hub, coturn, conf = county_with_relay(tmp, lab)
        secret = (tmp / "hub" / "turn_secret").read_text().strip()  # made by turn-config, shared with coturn
        assert f"static-auth-secret={secret}" in conf.read_text() and f"listening-ip={COUNTY_IP}" in conf.read_text()
        (tmp / "county.csv").write_text(SAMPLE)
        hub.cli("registry", "import", "--config", str(hub.config), str(tmp / "county.csv"))
        dev_a, dev_b = device_id(1, "134"), device_id(2, "134")
        password = hub.add_device(dev_a, kind="alarm-pillar", grid=GRID_A)
        hub.add_device(dev_b, kind="alarm-pillar", grid=GRID_B)
        for name, scope in (("li", GRID_A), ("wang", GRID_B)):
            hub.cli("user", "add", "--config", str(hub.config), name, "--role", "grid_worker", "--scope", scope,
                    "--password-stdin", stdin=f"{name} grid worker pw\n")
        hub.cli("user", "add", "--config", str(hub.config), "chen", "--role", "admin", "--password-stdin",
                stdin="county admin pw 1\n")
        tokens = {name: hub.cli("token", "create", "--config", str(hub.config), name) for name in ("li", "wang")}
        mosquitto.start()
        stack.callback(mosquitto.stop)
        coturn.start()
        stack.callback(coturn.stop)
        hub.start()
        stack.callback(hub.stop)
        folder = tmp / "edge"
        folder.mkdir()
        write_video(SceneSpec(640, 360, seconds=8, seed=3, movers=[Mover(1.0, 7.0, (-60, 150), (640, 120), (40, 80))]),
                    folder / "gate.mp4")
        write_tone(folder / "pillar-mic.wav", PILLAR_HZ, 5.0)
        edge = Edge(folder, dev_a, password, mosquitto.port, rate=0, kind="alarm-pillar", broker_host=COUNTY_IP,
                    lab=lab, netns=lab.village,
                    extra={"cameras": [{"name": "gate", "source": "gate.mp4"}],
                           "audio": {"input": "pillar-mic.wav", "output": "speaker.wav"}})
        edge.start()
        stack.callback(edge.stop)
        wait_for(lambda: "gate" in ((hub.get(f"/api/v1/devices/{dev_a}", tokens["li"])[1].get("heartbeat") or {})
                                    .get("cameras") or {}), 60, "the device's camera on the hub")
        yield County(lab, hub, edge, dev_a, tmp, tokens)
        assert "Traceback" not in edge.output() and "Traceback" not in hub.output()


@pytest.fixture
def browser(county):
    """Debian's Chromium in the county namespace (Playwright talks to it over pipes), with a fake
    microphone that plays the operator's tone."""
    wrapper = county.folder / "chromium-in-county"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(county.lab.prefix(county.lab.county))} /usr/bin/chromium \"$@\"\n")
    wrapper.chmod(0o755)
    tone = county.folder / "operator-mic.wav"
    write_tone(tone, OPERATOR_HZ, 10.0)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(wrapper), args=[
            *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone}", "--autoplay-policy=no-user-gesture-required",
            # the microphone is for secure pages only: the test's hub is plain HTTP on a lab address
            f"--unsafely-treat-insecure-origin-as-secure={county.hub.base}"])
        yield b
        b.close()


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_be_visible()


def _sessions(hub: Hub) -> list[dict]:
    with hub.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM view_sessions ORDER BY started_at"))]


def test_live_view_from_the_hub_crosses_the_nat_through_coturn(county, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    hub, dev_a = county.hub, county.dev_a
    before = len(_sessions(hub))
    # scope: grid B's worker cannot see, start or signal grid A's camera (404, as if it did not exist)
    for payload in ({"camera": "gate"}, {"camera": "gate", "talk": True}):
        status, body = hub.post(f"/api/v1/devices/{dev_a}/live", county.tokens["wang"], payload)
        assert status == 404, body
    status, body = hub.post(f"/api/v1/devices/{dev_a}/live", county.tokens["li"], {"camera": "nope"})
    assert status == 404, body

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
    live = _sessions(hub)[before:]
    assert [(s["username"], s["device_id"], s["camera"], s["page"], s["outcome"]) for s in live] == \
        [("li", dev_a, "gate", "device", "live")]
    assert live[0]["ended_at"] is None
    # grid B's worker on the page gets the plain 404 too
    other = browser.new_page()
    _login(other, hub.base, "wang", "wang grid worker pw")
    assert other.goto(f"{hub.base}/devices/{dev_a}").status == 404
    tile.locator("button.stop").click()
    wait_for(lambda: _sessions(hub)[before]["ended_at"] is not None, 10, "the session to end")
    watched = time.monotonic() - t0
    ended = _sessions(hub)[before]
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


def test_talk_back_through_coturn_both_ways(county, browser):
    """Push-to-talk from the device page: the operator's tone is heard on the pillar's speaker
    only while the button is held, and the pillar's microphone reaches the browser."""
    hub, dev_a = county.hub, county.dev_a
    speaker = county.folder / "edge" / "speaker.wav"
    speaker.unlink(missing_ok=True)
    page = browser.new_page()
    _login(page, hub.base, "li", "li grid worker pw")
    page.goto(f"{hub.base}/devices/{dev_a}")
    tile = page.locator(".tile[data-camera=gate]")
    tile.locator("button.play").click()
    expect(tile).to_have_attribute("data-state", "connected", timeout=30000)
    # the pillar's microphone at the browser (WebAudio analyser on the remote track)
    heard = wait_for(lambda: (lambda p: p if p and p["db"] > -60 and abs(p["hz"] - PILLAR_HZ) < 25 else None)(
        page.evaluate("() => xlLive.audioPeak(xlLive.sessions[0])")), 20, "the pillar's tone in the browser", 0.3)
    assert abs(heard["hz"] - PILLAR_HZ) < 25, heard
    pair = page.evaluate("() => xlLive.selectedPair(xlLive.sessions[0])")
    assert pair["local"] == "relay", pair
    # silence first, then the operator holds the button for 3 s, then silence again
    page.wait_for_timeout(1500)
    talk = tile.locator("button.talk")
    talk.dispatch_event("pointerdown")
    page.wait_for_timeout(3000)
    talk.dispatch_event("pointerup")
    page.wait_for_timeout(1500)
    tile.locator("button.stop").click()
    row = wait_for(lambda: [s for s in _sessions(hub) if s["talk"] and s["ended_at"] is not None], 10,
                   "the talk session to end")[-1]
    assert row["username"] == "li" and row["outcome"] == "closed"
    # the speaker's recording is finished when the device closes the session: its size stops changing
    sizes = []
    wait_for(lambda: speaker.exists() and sizes.append(speaker.stat().st_size) is None and len(sizes) > 3
             and sizes[-1] == sizes[-4] > 44, 15, "the speaker's recording to be finished", 0.3)
    samples, rate = read_wav(speaker)
    window = rate // 10
    rms = np.sqrt(np.mean(samples[: len(samples) // window * window].reshape(-1, window) ** 2, axis=1))
    loud = rms > 0.2 * rms.max()
    assert 20 <= loud.sum() <= 40, f"{loud.sum() / 10:.1f} s loud of {len(rms) / 10:.1f} s (held 3 s)"
    assert not loud[:5].any(), "sound on the speaker before the button was pressed"
    loud_part = samples[: len(loud) * window].reshape(-1, window)[loud].ravel()
    assert abs(peak_hz(loud_part, rate) - OPERATOR_HZ) < 10, peak_hz(loud_part, rate)


def test_the_video_wall_takes_the_smaller_stream_and_stops_tiles_off_screen(county, browser):
    hub = county.hub
    before = len(_sessions(hub))
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    _login(page, hub.base, "li", "li grid worker pw")
    page.goto(f"{hub.base}/wall")
    page.locator("button.layout[data-n='4']").click()
    tile = page.locator("#wall .tile[data-camera=gate]")
    expect(tile).to_have_attribute("data-state", "connected", timeout=30000)
    page.wait_for_function("() => document.querySelector('#wall video').videoWidth > 0", timeout=30000)
    # the wall's stream: 480 px wide, where the device page gets the camera's 640
    assert page.evaluate("() => document.querySelector('#wall video').videoWidth") == 480
    [row] = _sessions(hub)[before:]
    assert (row["page"], row["quality"], row["ended_at"]) == ("wall", "wall", None)
    # pushed off screen: the tile stops its stream and its session ends
    page.evaluate("() => { const s = document.createElement('div'); s.style.height = '3000px'; "
                  "document.getElementById('wall').before(s); }")
    expect(tile).to_have_attribute("data-state", "stopped", timeout=10000)
    wait_for(lambda: _sessions(hub)[before]["ended_at"] is not None, 10, "the wall tile's session to end")
    assert _sessions(hub)[before]["outcome"] == "closed"
    # back on screen: it plays again
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    expect(tile).to_have_attribute("data-state", "connected", timeout=30000)
