"""Clip uploads to the hub: the clips the hub asked for (``upload_clip`` commands) and alarms'.

The queue is in the store (applied with the command's id in one transaction), so a reboot loses
nothing. One thread uploads one clip at a time: it asks the hub how much it holds, then sends the
rest in pieces (``PUT`` with ``Content-Range`` and the file's SHA-256), paced to
``sync.upload_kbps`` so a village uplink keeps room for alarms and live video. An upload cut off
(the agent stopped, the network gone) goes on from the hub's offset next time. A clip the hub
refuses (too large, does not check) is recorded with the hub's reason and not sent again. The
device authenticates with its own device id and MQTT password (HTTP Basic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from protocols.deviceconfig import EdgeConfig
from protocols.messages import Command

from .config import mqtt_password
from .store import Store, StoreError

logger = logging.getLogger(__name__)

MIN_PIECE, MAX_PIECE = 16 * 1024, 1024 * 1024  # a piece takes about a second at sync.upload_kbps
WAIT_FOR_CLIP_S = 600.0  # an event whose clip never appears (none was recorded) is given up


class ClipUploader:
    def __init__(self, cfg: EdgeConfig, store: Store, media_root: Path):
        self.cfg, self.store, self.media_root = cfg, store, media_root
        self.piece = min(MAX_PIECE, max(MIN_PIECE, cfg.sync.upload_kbps * 125))
        self.base = (cfg.sync.hub_url or "").rstrip("/")
        self.counters = {"uploaded": 0, "refused": 0, "errors": 0, "bytes": 0}
        self._auth = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clip-upload", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        password = mqtt_password(self.cfg)
        token = base64.b64encode(f"{self.cfg.device.id}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def request(self, cmd: Command) -> bool:
        """An ``upload_clip`` command: queued once per command id (raises StoreError: not acked)."""
        if cmd.event_id is None:
            return False
        fresh = self.store.request_upload(cmd.event_id, command_id=cmd.id, command=cmd.command)
        self._wake.set()
        return fresh

    def queue(self, event_id: str) -> None:
        """Upload this event's clip without being asked (an alarm's)."""
        try:
            self.store.request_upload(event_id)
        except StoreError as exc:
            logger.error("cannot queue the clip of %s: %s", event_id, exc)
        self._wake.set()

    # --- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            self._wake.wait(2.0)
            self._wake.clear()
            try:
                for event_id, queued_at, rel in self.store.uploads():
                    if self._stop.is_set():
                        return
                    if rel is None:
                        if time.time() - queued_at > WAIT_FOR_CLIP_S:
                            self.store.finish_upload(event_id, "refused", "this event has no clip")
                        continue
                    self._upload(event_id, self.media_root / rel)
                backoff = 1.0
            except (OSError, urllib.error.URLError) as exc:  # the hub or the network is away: later
                self.counters["errors"] += 1
                logger.warning("clip upload to %s paused: %s; retrying in %.0f s", self.base, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            except Exception:
                self.counters["errors"] += 1
                logger.exception("clip upload failed; retrying")
                self._stop.wait(5.0)

    def _url(self, event_id: str) -> str:
        return f"{self.base}/api/v1/devices/{self.cfg.device.id}/clips/{event_id}"

    def _call(self, req: urllib.request.Request) -> tuple[int, dict]:
        req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.load(exc)
            except ValueError:
                return exc.code, {}

    def _upload(self, event_id: str, path: Path) -> None:
        if not path.is_file():
            self.store.finish_upload(event_id, "refused", "the clip was deleted before it was uploaded")
            return
        total = path.stat().st_size
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        status, body = self._call(urllib.request.Request(self._url(event_id)))
        if status == 404:
            raise OSError(f"the hub has no event {event_id} yet")  # not synced yet: try later
        if status != 200:
            raise OSError(f"the hub answered {status}: {body}")
        offset = int(body.get("received", 0)) if body.get("sha256") in (None, digest) else 0
        rate = self.cfg.sync.upload_kbps * 125  # bytes per second
        with open(path, "rb") as fh:
            while offset < total:
                if self._stop.is_set():
                    return
                fh.seek(offset)
                chunk = fh.read(self.piece)
                t0 = time.monotonic()
                req = urllib.request.Request(self._url(event_id), data=chunk, method="PUT", headers={
                    "Content-Type": "application/octet-stream", "X-Content-SHA256": digest,
                    "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{total}"})
                status, body = self._call(req)
                if status in (413, 422):
                    reason = (body.get("error") or {}).get("message", f"refused with {status}")
                    self.counters["refused"] += 1
                    logger.error("the hub refused the clip of %s: %s", event_id, reason)
                    self.store.finish_upload(event_id, "refused", reason[:200])
                    return
                if status == 409 and "received" in (body.get("error") or {}):
                    offset = int(body["error"]["received"])
                    continue
                if status != 200:
                    raise OSError(f"the hub answered {status}: {body}")
                offset = int(body.get("bytes_received", offset + len(chunk)))
                self.counters["bytes"] += len(chunk)
                pause = len(chunk) / rate - (time.monotonic() - t0)
                if pause > 0 and self._stop.wait(pause):
                    return
        self.store.finish_upload(event_id, "done")
        self.counters["uploaded"] += 1
        logger.info("clip of %s uploaded (%d bytes)", event_id, total)
