"""Live view: glass-to-glass latency on loopback, and the agent's CPU with 1 and with 4 viewers.

``xl-edge run`` as its own process with one camera ``clock://1280x720@25``: a live test camera
that draws the wall-clock time of each frame's capture (ms, 48 black/white blocks) into the
frame. Debian's Chromium (Playwright) logs in to the LAN page and plays the camera over WebRTC;
on every frame it shows (``requestVideoFrameCallback``) the page reads the blocks back from the
video and takes ``display time - capture time``. Same machine, same clock. The agent's CPU is
its user+system time over a window divided by the window (1.0 = one core), with one viewer,
then with four (four pages in the same browser).

Usage: python bench/live_latency.py [--seconds 20]
Last line: one JSON object with p50_ms, p95_ms, cpu_1_viewer, cpu_4_viewers, cpu_4_viewers_over_1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.vision import cpu_seconds  # noqa: E402
from tests.helpers import BIN, Edge, device_id, free_port, wait_for  # noqa: E402

PASSWORD = "bench password 1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]

# read the capture time drawn into each displayed frame
PROBE = """() => {
  const v = document.querySelector('#video-cam');
  window.xlLatency = [];
  const c = document.createElement('canvas');
  const g = c.getContext('2d', {willReadFrequently: true});
  const step = (now, meta) => {
    const w = v.videoWidth, h = v.videoHeight;
    if (w) {
      c.width = w; c.height = h;
      g.drawImage(v, 0, 0, w, h);
      const block = w / 48;
      const row = g.getImageData(0, Math.floor(block / 2), w, 1).data;
      let ms = 0;
      for (let bit = 0; bit < 48; bit++) {
        const x = Math.floor((bit + 0.5) * block);
        ms = ms * 2 + (row[x * 4 + 1] > 128 ? 1 : 0);
      }
      const shown = performance.timeOrigin + meta.expectedDisplayTime;
      const lag = shown - ms;
      if (lag > -50 && lag < 10000) window.xlLatency.push(lag);
    }
    v.requestVideoFrameCallback(step);
  };
  v.requestVideoFrameCallback(step);
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def open_viewer(browser, base: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/")
    page.fill("input[name=name]", "bench")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#video-cam")
    wait_for(lambda: page.evaluate("document.querySelector('#video-cam') && document.querySelector('#video-cam')"
                                   ".currentTime > 0.5"), 30, "live video in the browser")
    return page


def agent_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each measured window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xl-bench-live-") as tmp:
        tmp = Path(tmp)
        port = free_port()
        edge = Edge(tmp / "edge", device_id(902), "not-used-password", 1, rate=0, extra={
            "cameras": [{"name": "cam", "source": "clock://1280x720@25", "faces": {"enabled": False},
                         "motion": {"masks": [[[0, 0], [1, 0], [1, 0.1], [0, 0.1]]]}}],
            "web": {"host": "127.0.0.1", "port": port, "ice_addresses": ["127.0.0.1"]}, "log_level": "WARNING"})
        subprocess.run([str(BIN / "xl-edge"), "user", "add", "--config", str(edge.config), "bench", "--role",
                        "viewer", "--password-stdin"], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
        edge.start()
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                first = open_viewer(browser, base)
                first.evaluate(PROBE)
                time.sleep(3)  # settle
                first.evaluate("window.xlLatency = []")
                cpu1 = agent_cpu(edge.proc.pid, args.seconds)
                lat = first.evaluate("window.xlLatency")
                others = [open_viewer(browser, base) for _ in range(3)]
                viewers = first.evaluate("fetch('/api/health').then(r => r.json()).then(h => h.cameras[0].viewers)")
                time.sleep(3)
                cpu4 = agent_cpu(edge.proc.pid, args.seconds)
                assert all(o.evaluate("window.xlPeers.cam.connectionState") == "connected" for o in others)
                browser.close()
            assert edge.running(), edge.output()
        finally:
            edge.stop()
    if len(lat) < 50:
        raise SystemExit(f"only {len(lat)} frames measured; see the agent log")
    out = {"p50_ms": statistics.median(lat), "p95_ms": percentile(lat, 95), "frames_measured": len(lat),
           "cpu_1_viewer": cpu1, "cpu_4_viewers": cpu4, "cpu_4_viewers_over_1": cpu4 / cpu1,
           "viewers_seen_by_agent": viewers}
    print(f"glass-to-glass over WebRTC on loopback: p50 {out['p50_ms']:.0f} ms, p95 {out['p95_ms']:.0f} ms "
          f"({len(lat)} frames); agent CPU {100 * cpu1:.1f} % of a core with 1 viewer, {100 * cpu4:.1f} % with 4 "
          f"(x{cpu4 / cpu1:.2f})")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
