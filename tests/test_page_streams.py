"""The console's live stream on a real hub: one fan-out for every open page, in the page's
language, counts that follow the tickets, and no web thread held per open page."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.request

from .helpers import Hub, console_session, wait_for
from .test_gridregistry import SAMPLE

PASSWORD = "a long stream password"
GRID = "330102001001001"


class Stream(threading.Thread):
    def __init__(self, port: int, cookie: str):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET /stream?after=0 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        self.text = ""
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            while data := self.sock.recv(65536):
                with self.lock:
                    self.text += data.decode("utf-8", "replace")
        except OSError:
            pass

    def events(self, kind: str) -> list[dict]:
        with self.lock:
            text = self.text
        return [json.loads(m) for m in re.findall(rf"event: {kind}\n(?:id: \d+\n)?data: (.*)\n", text)]

    def close(self) -> None:
        self.sock.close()


def test_open_pages_get_tickets_and_counts_in_their_language_and_hold_no_web_thread(tmp_path, procs):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}")
    cfg = json.loads(hub.config.read_text())
    cfg["web"]["threads"] = 2  # two web threads, 22 open pages
    hub.config.write_text(json.dumps(cfg))
    procs.append(hub)
    (tmp_path / "county.csv").write_text(SAMPLE, encoding="utf-8")
    hub.cli("registry", "import", "--config", str(hub.config), str(tmp_path / "county.csv"))
    hub.cli("user", "add", "--config", str(hub.config), "admin", "--role", "admin", "--password-stdin",
            stdin=PASSWORD + "\n")
    token = hub.cli("token", "create", "--config", str(hub.config), "admin")
    hub.start()
    zh, en = Stream(hub.web_port, console_session(hub.web_port, "admin", PASSWORD)), Stream(hub.web_port, console_session(hub.web_port, "admin", PASSWORD, "en"))
    # twenty more open pages than the web server has threads
    others = [Stream(hub.web_port, console_session(hub.web_port, "admin", PASSWORD)) for _ in range(20)]
    streams = [zh, en, *others]
    for s in streams:
        s.start()
    wait_for(lambda: hub.health().get("page_streams", {}).get("subscribers") == len(streams), 20,
             "every page to be subscribed")
    # the API still answers, at once, with every page open
    status, body = hub.get("/api/v1/devices", token)
    assert status == 200
    status, made = hub.post("/api/v1/tickets", token, {"title": "井盖缺失", "grid_code": GRID, "category": "road"})
    assert status == 201, made
    tid = made["ticket"]["id"]
    wait_for(lambda: all(s.events("ticket") for s in streams), 15, "the new ticket on every open page")
    (zt,), (et,) = zh.events("ticket"), en.events("ticket")
    assert (zt["id"], zt["state"], zt["place"]) == (tid, "已分拨", "留下街道 › 小和山村 › 小和山一网格")
    assert (et["id"], et["state"]) == (tid, "dispatched") and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
                                                                         et["created_at"])
    wait_for(lambda: any(c["states"].get("dispatched") == 1 for c in zh.events("counts")), 15, "the counts")
    assert hub.post(f"/api/v1/tickets/{tid}/actions/accept", token)[0] == 200
    wait_for(lambda: zh.events("counts")[-1]["states"].get("accepted") == 1, 15, "the counts after the accept")
    assert zh.events("counts")[-1]["states"].get("dispatched", 0) == 0
    health = hub.health()["page_streams"]
    assert health["reads"] < 60  # one reader for all 22 pages, about once a second (not 22 a second)
    for s in streams:
        s.close()
    wait_for(lambda: hub.health()["page_streams"]["subscribers"] == 0, 20, "closed pages to be dropped")
    urllib.request.urlopen(f"{hub.base}/healthz", timeout=5).read()
