"""Live video and talk-back from the hub, through coturn, across a NAT made of network namespaces
(the set-up of tests/test_hub_live.py; needs root, ip, iptables and coturn).

The edge agent (an alarm pillar) sits in a village namespace behind masquerade; hub, Mosquitto,
coturn and Debian's Chromium in the county namespace. The camera is ``clock://1280x720@25``: each
frame carries its capture time (ms, 48 black/white blocks), read back from every displayed frame
(``requestVideoFrameCallback``) for glass-to-glass. The pillar's microphone is
``tone-clock://1000``: a 100 ms burst at the start of every wall-clock second; the page finds each
burst's onset in the remote audio (a 256-sample ScriptProcessor) for mouth-to-ear. Same machine,
same clock. First frame: from the click on 观看 to the video's first decoded frame, over repeated
starts. CPU: user+system time of the agent and of coturn over a window divided by the window
(1.0 = one core), with 1 hub viewer and with 4.

Usage: sudo python bench/hub_live.py [--seconds 20] [--starts 10]
Last line: one JSON object with first_frame_p95_ms, g2g_p95_ms, audio_p95_ms, cpu_1_viewer,
cpu_4_viewers (and the p50s, coturn's CPU and the sample counts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.live_latency import PROBE, percentile  # noqa: E402
from bench.vision import cpu_seconds  # noqa: E402
from tests.helpers import Edge, county_with_relay, device_id, wait_for  # noqa: E402
from tests.netlab import COUNTY_IP, NetLab  # noqa: E402
from tests.test_gridregistry import SAMPLE  # noqa: E402

GRID = "330102001001001"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream"]

# onsets of the pillar's tone bursts in the remote audio: ms after the whole second they were said
EAR = """() => {
  const h = xlLive.sessions[0];
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(h.remoteAudio);
  const proc = ctx.createScriptProcessor(256, 1, 1);
  let on = false;
  window.xlEar = [];
  proc.onaudioprocess = (e) => {
    const d = e.inputBuffer.getChannelData(0);
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
    const rms = Math.sqrt(s / d.length);
    const lag = (performance.timeOrigin + performance.now()) % 1000;
    if (!on && rms > 0.05) { on = true; if (lag < 900) window.xlEar.push(lag); }
    if (on && rms < 0.01) on = false;
  };
  src.connect(proc);
  proc.connect(ctx.destination);
  ctx.resume();
}"""


def cpu_share(pids: list[int], seconds: float) -> list[float]:
    c0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - t0
    return [(cpu_seconds(p) - c) / took for p, c in zip(pids, c0)]


def open_view(browser, base: str, device: str):
    page = browser.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", "op")
    page.fill("input[name=password]", "bench operator pw")
    page.click("button[type=submit]")
    page.wait_for_selector("nav")
    page.goto(f"{base}/devices/{device}")
    return page


def play(page, timeout_s: float = 30) -> float:
    """Click 观看 and wait for the first frame; its time in ms."""
    tile = page.locator(".tile").first
    tile.locator("button.play").click()
    page.wait_for_function("() => document.querySelector('.tile').dataset.firstFrameMs", timeout=timeout_s * 1000)
    return float(tile.get_attribute("data-first-frame-ms"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each measured window")
    parser.add_argument("--starts", type=int, default=10, help="starts timed for the first frame")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xl-bench-hub-live-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        lab = NetLab().up()
        stack.callback(lab.down)
        mosquitto, hub, coturn, _ = county_with_relay(tmp, lab, live={"viewers_per_device": 4},
                                                      hub_extra={"log_level": "WARNING"})
        (tmp / "county.csv").write_text(SAMPLE)
        hub.cli("registry", "import", "--config", str(hub.config), str(tmp / "county.csv"))
        dev = device_id(1, "134")
        password = hub.add_device(dev, kind="alarm-pillar", grid=GRID)
        hub.cli("user", "add", "--config", str(hub.config), "op", "--role", "operator", "--scope", "330102000000",
                "--password-stdin",
                stdin="bench operator pw\n")
        token = hub.cli("token", "create", "--config", str(hub.config), "op")
        mosquitto.start()
        stack.callback(mosquitto.stop)
        coturn.start()
        stack.callback(coturn.stop)
        hub.start()
        stack.callback(hub.stop)
        edge = Edge(tmp / "edge", dev, password, mosquitto.port, rate=0, kind="alarm-pillar", broker_host=COUNTY_IP,
                    lab=lab, netns=lab.village, extra={
                        "log_level": "WARNING",
                        "cameras": [{"name": "cam", "source": "clock://1280x720@25", "faces": {"enabled": False},
                                     "motion": {"masks": [[[0, 0], [1, 0], [1, 0.1], [0, 0.1]]]}}],
                        "audio": {"input": "tone-clock://1000", "output": "speaker.wav"}})
        edge.start()
        stack.callback(edge.stop)
        wait_for(lambda: "cam" in ((hub.get(f"/api/v1/devices/{dev}", token)[1].get("heartbeat") or {})
                                   .get("cameras") or {}), 60, "the camera on the hub")
        wrapper = tmp / "chromium-in-county"
        wrapper.write_text(f"#!/bin/sh\nexec {' '.join(lab.prefix(lab.county))} /usr/bin/chromium \"$@\"\n")
        wrapper.chmod(0o755)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(wrapper), args=[
                *CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={hub.base}"])
            first_ms = []
            page = open_view(browser, hub.base, dev)
            for _ in range(args.starts):
                first_ms.append(play(page))
                page.locator(".tile button.stop").click()
                page.wait_for_timeout(500)
                page.reload()
            first_ms.append(play(page))
            page.wait_for_function("() => xlLive.sessions[0] && xlLive.sessions[0].remoteAudio", timeout=20000)
            page.evaluate(PROBE.replace("#video-cam", ".tile video"))
            page.evaluate(EAR)
            time.sleep(3)
            page.evaluate("window.xlLatency = []; window.xlEar = []")
            cpu_agent_1, cpu_turn_1 = cpu_share([edge.proc.pid, coturn.proc.pid], args.seconds)
            g2g = page.evaluate("window.xlLatency")
            ear = page.evaluate("window.xlEar")
            pair = page.evaluate("() => xlLive.selectedPair(xlLive.sessions[0])")
            others = [open_view(browser, hub.base, dev) for _ in range(3)]
            for other in others:
                play(other)
            time.sleep(3)
            cpu_agent_4, cpu_turn_4 = cpu_share([edge.proc.pid, coturn.proc.pid], args.seconds)
            states = [o.evaluate("() => xlLive.sessions[0].pc.connectionState") for o in others]
            browser.close()
        assert states == ["connected"] * 3, states
        assert edge.running(), edge.output()
    if len(g2g) < 50 or len(ear) < 5:
        raise SystemExit(f"only {len(g2g)} frames and {len(ear)} bursts measured; see the logs")
    out = {"first_frame_p50_ms": statistics.median(first_ms), "first_frame_p95_ms": percentile(first_ms, 95),
           "g2g_p50_ms": statistics.median(g2g), "g2g_p95_ms": percentile(g2g, 95),
           "audio_p50_ms": statistics.median(ear), "audio_p95_ms": percentile(ear, 95),
           "cpu_1_viewer": cpu_agent_1, "cpu_4_viewers": cpu_agent_4,
           "coturn_cpu_1_viewer": cpu_turn_1, "coturn_cpu_4_viewers": cpu_turn_4,
           "starts": len(first_ms), "frames_measured": len(g2g), "bursts_measured": len(ear),
           "selected_pair": f"{pair['local']} -> {pair['remote']}"}
    print(f"through coturn across the NAT: first frame p50 {out['first_frame_p50_ms']:.0f} ms, p95 "
          f"{out['first_frame_p95_ms']:.0f} ms ({len(first_ms)} starts); glass-to-glass p50 {out['g2g_p50_ms']:.0f} ms, "
          f"p95 {out['g2g_p95_ms']:.0f} ms ({len(g2g)} frames); pillar microphone to the operator's ear p50 "
          f"{out['audio_p50_ms']:.0f} ms, p95 {out['audio_p95_ms']:.0f} ms ({len(ear)} bursts); agent CPU "
          f"{100 * cpu_agent_1:.1f} % of a core with 1 viewer, {100 * cpu_agent_4:.1f} % with 4; coturn "
          f"{100 * cpu_turn_1:.1f} % / {100 * cpu_turn_4:.1f} %")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
