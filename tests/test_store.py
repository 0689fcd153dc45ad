from __future__ import annotations

import sqlite3

from edge.store import NewEvent, Store, migrations
from protocols.messages import Priority, decode_event

DEV = "33010200001310000001"


def test_migrations_wal_and_fsync(tmp_path):
    store = Store(tmp_path / "e.db", DEV)
    assert [m.name for m in migrations.applied(store.db)] == ["m001_events_and_outbox", "m002_media", "m003_users",
                                                            "m004_alarms_and_commands", "m005_uploads"]
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_events_survive_reopen_and_seq_continues(tmp_path):
    store = Store(tmp_path / "e.db", DEV)
    first = store.add_many([NewEvent("motion", {"i": i}) for i in range(3)])
    store.close()
    # another process sees it at once: it is committed, not buffered
    assert sqlite3.connect(tmp_path / "e.db").execute("SELECT count(*) FROM outbox").fetchone()[0] == 3
    store = Store(tmp_path / "e.db", DEV)
    later = store.add("alarm", {"presses": 1})
    assert later.seq == first[-1].seq + 1 and later.priority == Priority.URGENT
    assert store.outbox_depth() == 4
    store.close()


def test_lanes_put_alarms_first_and_ack_removes_rows(tmp_path):
    store = Store(tmp_path / "e.db", DEV)
    motion = store.add_many([NewEvent("motion", {}) for _ in range(100)])
    alarm = store.add("alarm", {})
    assert [r.event_id for r in store.fetch_lane(Priority.URGENT, 0, 10)] == [alarm.id]
    lane = store.fetch_lane(Priority.NORMAL, 0, 10)
    assert [r.event_id for r in lane] == [e.id for e in motion[:10]]
    assert decode_event(lane[0].payload).id == motion[0].id
    assert [r.event_id for r in store.fetch_lane(Priority.NORMAL, lane[-1].seq, 5)] == [e.id for e in motion[10:15]]
    assert store.mark_synced([alarm.id, motion[0].id, motion[0].id]) == 2
    assert store.outbox_depth() == 99
    synced = {e["id"] for e in store.events(limit=200) if e["synced_at"]}
    assert synced == {alarm.id, motion[0].id}
    store.close()


def test_listener_is_told_after_the_commit(tmp_path):
    seen = []
    store = Store(tmp_path / "e.db", DEV)
    store.listeners.append(lambda: seen.append(store.outbox_depth()))
    store.add("motion", {})
    assert seen == [1]
    store.close()


def test_a_reader_never_waits_for_the_writer_and_sees_only_committed_rows(tmp_path):
    import sqlite3
    import threading
    store = Store(tmp_path / "e.db", DEV)
    store.add("motion", {})
    # another writer holds the write lock in an open transaction (as a long alarm write would)
    other = sqlite3.connect(tmp_path / "e.db", timeout=30)
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM outbox")
    got: list[int] = []
    with store._lock:  # and the store's own writer is busy too
        reader = threading.Thread(target=lambda: got.append((store.outbox_depth(), len(store.events()))))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a read waited for the writer"
    assert got == [(1, 1)]  # the uncommitted delete is not seen
    other.rollback()
    other.close()
    store.close()


def test_a_motions_update_folds_into_the_motion_reported_at_its_start(tmp_path):
    store = Store(tmp_path / "e.db", DEV)
    motion = store.add("motion", {"camera": "gate", "start": 1.0, "zones": ["gate"]})
    other = store.add("motion", {"camera": "yard", "start": 1.5, "zones": []})
    store.add("motion_update", {"motion_id": motion.id, "camera": "gate", "start": 1.0, "end": 4.0,
                                "zones": ["gate", "road"], "peak_area": 0.2, "clip": "gate/x.mp4"})
    rows = {r["id"]: r["data"] for r in store.events(type="motion")}
    assert rows[motion.id] == {"camera": "gate", "start": 1.0, "end": 4.0, "zones": ["gate", "road"],
                               "peak_area": 0.2, "clip": "gate/x.mp4", "ended": True}
    assert rows[other.id] == {"camera": "yard", "start": 1.5, "zones": []}
    # the update is still an event of its own (it goes to the hub), left out where the motion is shown
    assert [r["type"] for r in store.events(exclude_type="motion_update")] == ["motion", "motion"]
    assert len(store.events(type="motion_update")) == 1 and store.outbox_depth() == 3
    store.close()


def test_an_alarm_deep_in_a_large_ack_is_marked_received(tmp_path):
    from edge.alarms import AlarmBook
    store = Store(tmp_path / "e.db", DEV)
    others = store.add_many([NewEvent("motion", {"n": i}) for i in range(4000)])
    alarm = store.add("alarm", {"source": "button", "presses": 1})
    AlarmBook(store).received([e.id for e in others] + [alarm.id])  # one hub ack of 4,001 ids
    assert [a.state for a in store.alarms(ids=[alarm.id])] == ["received"]
    store.close()
