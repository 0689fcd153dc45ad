"""The hub's clip folder on a real database (SQLite and PostgreSQL) and real files: pieces in
order only, the checks on the last piece, the cap, and the sweep (retention, quota, unfinished
uploads)."""

from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa

from hub import clips, registry
from hub.clips import ClipError, ClipStore
from hub.schema import events
from protocols.ids import EventIdGenerator

from .helpers import device_id

IDS = EventIdGenerator()
MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40


def _event(engine, dev: str) -> str:
    event_id = IDS.new()
    with engine.begin() as conn:
        conn.execute(events.insert().values(id=event_id, device_id=dev, type="motion", priority=1, ts=time.time(),
                                            seq=1, data={}, stored_at=time.time()))
    return event_id


@pytest.fixture
def store(engine, tmp_path):
    dev = device_id(1, "131")
    registry.add_device(engine, dev, kind="camera-box", name="x")
    return ClipStore(engine, tmp_path / "media", max_clip_bytes=64 * 1024, quota_bytes=3 * len(MP4),
                     retention_days=1), dev


def _upload(store: ClipStore, dev: str, event_id: str, data: bytes = MP4, piece: int = 4096, now=None) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    row = {}
    for start in range(0, len(data), piece):
        chunk = data[start:start + piece]
        row = store.receive(dev, event_id, start, start + len(chunk) - 1, len(data), sha, chunk, now=now)
    return row


def test_pieces_in_order_resends_gaps_and_the_checks(store):
    store, dev = store
    event_id = _event(store.engine, dev)
    sha = hashlib.sha256(MP4).hexdigest()
    store.receive(dev, event_id, 0, 4095, len(MP4), sha, MP4[:4096])
    assert store.offset(dev, event_id) == 4096
    store.receive(dev, event_id, 0, 4095, len(MP4), sha, MP4[:4096])  # a resend changes nothing
    with pytest.raises(ClipError) as gap:
        store.receive(dev, event_id, 8192, 9215, len(MP4), sha, MP4[8192:9216])
    assert gap.value.status == 409 and gap.value.received == 4096
    with pytest.raises(ClipError) as other:  # another device's event is not there for it
        store.receive(device_id(2, "131"), event_id, 0, 9, len(MP4), sha, MP4[:10])
    assert other.value.status == 404
    row = _upload(store, dev, event_id)
    assert row["state"] == "complete" and (store.root / row["path"]).read_bytes() == MP4
    # not an MP4, or not what the checksum says: not kept
    for data, digest in ((b"\x00" * 100, hashlib.sha256(b"\x00" * 100).hexdigest()), (MP4, "0" * 64)):
        bad = _event(store.engine, dev)
        with pytest.raises(ClipError) as err:
            store.receive(dev, bad, 0, len(data) - 1, len(data), digest, data)
        assert err.value.status == 422
        assert clips.status(store.engine, bad)["state"] == "refused"
    with pytest.raises(ClipError) as big:
        store.receive(dev, _event(store.engine, dev), 0, 9, 65 * 1024, sha, MP4[:10])
    assert big.value.status == 413 and "max_clip_mb" in big.value.message


def test_the_sweep_keeps_retention_quota_and_drops_unfinished_uploads(store):
    store, dev = store
    now = time.time()
    old = _event(store.engine, dev)
    _upload(store, dev, old, now=now - 2 * 86400)  # older than the one day kept
    kept = [_event(store.engine, dev) for _ in range(4)]
    for i, event_id in enumerate(kept):
        _upload(store, dev, event_id, now=now - 100 + i)
    half = _event(store.engine, dev)
    sha = hashlib.sha256(MP4).hexdigest()
    store.receive(dev, half, 0, 4095, len(MP4), sha, MP4[:4096], now=now - 3 * 86400)
    store.sweep(now=now)
    states = {e: clips.status(store.engine, e)["state"] for e in [old, *kept, half]}
    # the old one by retention, the oldest of the rest by the quota (three clips), the half upload
    assert states == {old: "expired", kept[0]: "expired", kept[1]: "complete", kept[2]: "complete",
                      kept[3]: "complete", half: "expired"}
    assert not (store.root / old[:8] / f"{old}.mp4").exists()
    assert not store.path(half).with_suffix(".part").exists()
    total = sum(p.stat().st_size for p in store.root.rglob("*.mp4"))
    assert total <= store.quota_bytes
