"""Event media on the edge: JPEG snapshots, thumbnails and face crops, MP4 clips, and the
retention that keeps them inside a disk quota.

Files live under ``media.path`` as ``<camera>/<YYYY-MM-DD>/<event id>-<kind>.<ext>`` and each
one is a row in the store's ``media`` table. Retention: when a write would pass the quota, or
leave less than ``min_free_mb`` on the disk, clips go first, oldest first, then the other
files, oldest first — but only files whose event the hub has stored. A file of an event that
is not synced yet is never deleted; when nothing can go, the new file is not written (and
counted), while the event itself is still stored. Clips are written by one writer thread so
cameras never wait on the disk.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import Store

logger = logging.getLogger(__name__)

KINDS_BY_AGE = ("clip", "snapshot", "face")  # what retention removes first


@dataclass
class ClipJob:
    event_id: str
    rel: str  # path under the media folder
    template: object  # the PyAV input stream the packets came from
    packets: list  # capture.Packet, starting at a keyframe


class MediaStore:
    def __init__(self, root: Path, store: Store, *, quota_bytes: int, min_free_bytes: int, jpeg_quality: int = 85):
        self.root = root
        self.store = store
        self.quota_bytes, self.min_free_bytes = quota_bytes, min_free_bytes
        self.jpeg_quality = jpeg_quality
        self.root.mkdir(parents=True, exist_ok=True)
        self.refused = 0  # files not written for lack of room
        self.deleted = 0
        self._lock = threading.Lock()
        self._jobs: queue.Queue[ClipJob | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._write_clips, name="clip-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=30)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every clip handed over so far is written."""
        deadline = time.monotonic() + timeout
        while self._jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _relpath(self, event_id: str, camera: str, kind: str, ext: str) -> str:
        day = time.strftime("%Y-%m-%d")
        return f"{camera}/{day}/{event_id}-{kind}.{ext}"

    def path(self, rel: str) -> Path:
        return self.root / rel

    # --- room ---------------------------------------------------------------------------

    def _disk_free(self) -> int:
        return shutil.disk_usage(self.root).free

    def make_room(self, incoming: int) -> bool:
        """Delete synced files, clips first, until ``incoming`` more bytes fit. False if they cannot."""
        with self._lock:
            used = self.store.media_bytes()
            free = self._disk_free()

            def fits() -> bool:
                return used + incoming <= self.quota_bytes and free - incoming >= self.min_free_bytes

            for kind in KINDS_BY_AGE:
                while not fits():
                    rows = self.store.deletable_media(kind, 50)
                    if not rows:
                        break
                    gone = []
                    for row in rows:
                        try:
                            (self.root / row.path).unlink()
                        except FileNotFoundError:
                            pass
                        except OSError as exc:
                            logger.warning("cannot delete %s: %s", row.path, exc)
                            continue
                        gone.append(row.id)
                        used -= row.bytes
                        free += row.bytes
                        if fits():
                            break
                    self.store.forget_media(gone)
                    self.deleted += len(gone)
            return fits()

    def save_bytes(self, event_id: str, kind: str, rel: str, data: bytes) -> str | None:
        if not self.make_room(len(data)):
            self.refused += 1
            logger.warning("no room for %s (%d bytes): quota %d MB, min free %d MB; event %s kept without it",
                           rel, len(data), self.quota_bytes >> 20, self.min_free_bytes >> 20, event_id)
            return None
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            self.refused += 1
            logger.error("cannot write %s: %s", path, exc)
            tmp.unlink(missing_ok=True)
            return None
        self.store.add_media(event_id, kind, rel, len(data))
        return rel

    # --- images -------------------------------------------------------------------------

    def encode_jpeg(self, rgb: np.ndarray, quality: int | None = None) -> bytes:
        import cv2
        ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality or self.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()

    def save_jpeg(self, event_id: str, camera: str, kind: str, rgb: np.ndarray) -> str | None:
        return self.save_bytes(event_id, kind, self._relpath(event_id, camera, kind, "jpg"), self.encode_jpeg(rgb))

    # --- clips --------------------------------------------------------------------------

    def clip_path(self, event_id: str, camera: str) -> str:
        return self._relpath(event_id, camera, "clip", "mp4")

    def submit_clip(self, job: ClipJob) -> None:
        """Queue a clip to be written to ``job.rel``."""
        try:
            self._jobs.put(job, timeout=5)
        except queue.Full:
            self.refused += 1
            logger.error("clip writer is behind: clip of %s dropped", job.event_id)

    def _write_clips(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is None:
                    return
                self._write_clip(item)
            finally:
                self._jobs.task_done()


    def _write_clip(self, job: ClipJob) -> None:
        estimate = sum(len(p.data) for p in job.packets) + 64 * 1024  # packets plus the MP4 index
        if not self.make_room(estimate):
            self.refused += 1
            logger.warning("no room for the clip of %s (%d bytes); event kept without it", job.event_id, estimate)
            return
        path = self.root / job.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            mux_clip(job.template, job.packets, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except Exception as exc:  # a damaged packet or a full disk must not stop the writer
            logger.error("clip of %s not written: %s", job.event_id, exc)
            tmp.unlink(missing_ok=True)
            self.refused += 1
            return
        self.store.add_media(job.event_id, "clip", job.rel, path.stat().st_size)


def mux_clip(template, packets: list, path: Path) -> None:
    """Write H.264 packets (the first a keyframe) to an MP4 file, without re-encoding."""
    import av
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream_from_template(template)
        base = next((p.dts for p in packets if p.dts is not None), 0)
        last_dts = None
        for p in packets:
            pkt = av.Packet(p.data)
            pkt.pts = None if p.pts is None else p.pts - base
            dts = None if p.dts is None else p.dts - base
            if dts is not None and last_dts is not None and dts <= last_dts:
                dts = last_dts + 1  # a looped file restarts its timestamps; keep them increasing
                pkt.pts = max(pkt.pts or dts, dts)
            pkt.dts, last_dts = dts, dts if dts is not None else last_dts
            pkt.time_base = template.time_base
            pkt.is_keyframe = p.key
            pkt.stream = stream
            out.mux(pkt)
