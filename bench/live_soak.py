"""Live-view soak: an agent analysing a looping generated scene while 4 WebRTC viewers and 2 MJPEG
clients connect, watch for 1-5 s and disconnect, over and over, for 10 minutes (``--seconds``),
the agent running under faulthandler. Prints what happened; the last line is one JSON object
with seconds, crashed, stalls, webrtc_sessions, mjpeg_sessions, min_fps, motion_events, errors.

Usage: python bench/live_soak.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import Hub, device_id  # noqa: E402
from tests.live_soak import soak, start_agent  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    os.environ["PYTHONFAULTHANDLER"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hub = Hub(folder / "hub", f"sqlite:///{folder / 'hub.db'}")
        dev = device_id(1)
        password = hub.add_device(dev)
        hub.start()
        edge, base = start_agent(folder / "edge", hub.mqtt_port, password, dev)
        edge.start()
        try:
            result = soak(edge, base, args.seconds)
        finally:
            edge.stop()
            hub.stop()
    print(f"{result.seconds:.0f} s: {result.webrtc_sessions} WebRTC sessions ({result.webrtc_frames} frames), "
          f"{result.mjpeg_sessions} MJPEG sessions ({result.mjpeg_frames} frames), {result.motion_events} motion "
          f"events, lowest camera fps {result.min_fps:.1f}, stalls {result.stalls}, crashed: {result.crashed}")
    for error in result.errors[:10]:
        print("  error:", error)
    print(json.dumps({"seconds": result.seconds, "crashed": result.crashed, "stalls": result.stalls,
                      "webrtc_sessions": result.webrtc_sessions, "mjpeg_sessions": result.mjpeg_sessions,
                      "min_fps": round(result.min_fps, 1), "motion_events": result.motion_events,
                      "errors": len(result.errors)}))
    return 0 if result.crashed is None and result.stalls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
