from __future__ import annotations

import json
import time

import pytest

from protocols import ProtocolError, topics
from protocols.ids import EventIdGenerator, check_device_id, check_event_id
from protocols.messages import (Event, Heartbeat, Status, decode_ack, decode_event, decode_heartbeat,
                                decode_hub_status, decode_status, encode_ack, encode_event, encode_heartbeat,
                                encode_hub_status, encode_status)

DEV = "33010200001310000001"


def test_event_ids_are_uuid7_and_sortable_within_one_millisecond():
    gen = EventIdGenerator()
    ids = [gen.new(now_ms=1_700_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    assert all(check_event_id(i) for i in ids)
    later = gen.new(now_ms=1_700_000_000_001 + 10)
    assert later > ids[-1]


@pytest.mark.parametrize("bad", ["3301020000131000000", "3301020000131000000x", "33010200009990000001", 12, None])
def test_bad_device_ids(bad):
    with pytest.raises(ProtocolError):
        check_device_id(bad)


def test_topics_round_trip_and_reject_foreign_topics():
    assert topics.event(DEV) == f"xl/v1/dev/{DEV}/event"
    assert topics.parse_device_topic(topics.heartbeat(DEV)) == (DEV, "heartbeat")
    assert topics.all_devices("event", "hub") == "$share/hub/xl/v1/dev/+/event"
    for bad in ("xl/v2/dev/x/event", f"xl/v1/dev/{DEV}/config", f"xl/v1/dev/{DEV}/event/extra", "other"):
        with pytest.raises(ProtocolError):
            topics.parse_device_topic(bad)
    with pytest.raises(ProtocolError):
        topics.event("../#")


def _event(**over) -> dict:
    ev = Event(id=EventIdGenerator().new(), device_id=DEV, type="motion", ts=time.time(), seq=3, priority=1,
               data={"zones": ["门口"]})
    return {**json.loads(encode_event(ev)), **over}


def test_event_round_trip():
    ev = Event(id=EventIdGenerator().new(), device_id=DEV, type="alarm", ts=1.7e9, seq=9, priority=3,
               data={"presses": 2, "地点": "村委会"})
    assert decode_event(encode_event(ev), topic_device=DEV) == ev


@pytest.mark.parametrize("payload, reason", [
    (b"", "not UTF-8 JSON"),
    (b"\xff", "not UTF-8 JSON"),
    (b"[]", "must be a JSON object"),
    (json.dumps(_event(schema_version=2)).encode(), "schema_version"),
    (json.dumps(_event(schema_version=True)).encode(), "schema_version"),
    (json.dumps(_event(id="x")).encode(), "UUIDv7"),
    (json.dumps(_event(seq=-1)).encode(), "seq"),
    (json.dumps(_event(seq=True)).encode(), "boolean"),
    (json.dumps(_event(priority=9)).encode(), "priority"),
    (json.dumps(_event(ts=12)).encode(), "unix seconds"),
    (json.dumps(_event(type="Motion!")).encode(), "event type"),
    (json.dumps(_event(data=[])).encode(), "'data' must be dict"),
    (json.dumps({k: v for k, v in _event().items() if k != "seq"}).encode(), "missing field 'seq'"),
    (b"{" + b" " * (1024 * 1024) + b"}", "exceeds"),
])
def test_bad_events_raise_with_a_reason(payload, reason):
    with pytest.raises(ProtocolError) as exc:
        decode_event(payload)
    assert reason in exc.value.reason


def test_event_device_must_match_topic():
    with pytest.raises(ProtocolError, match="does not match topic"):
        decode_event(json.dumps(_event()).encode(), topic_device="33010200001310000002")


def test_other_messages_round_trip():
    ids = [EventIdGenerator().new() for _ in range(3)]
    assert decode_ack(encode_ack(ids)) == ids
    st = Status(state="online", ts=1.7e9, kind="camera-box", model="m", software="s", grid_code="330102001001001",
                location={"latitude": 30.0, "longitude": 120.0})
    assert decode_status(encode_status(st)) == st
    hb = Heartbeat(ts=1.7e9, uptime_s=5.0, disk_free_bytes=10, outbox_depth=3, cameras={"cam1": 25.0})
    assert decode_heartbeat(encode_heartbeat(hb)) == hb
    assert decode_hub_status(encode_hub_status("offline", 1.7e9)).state == "offline"
    assert decode_hub_status(encode_hub_status("online", 1.7e9, boot="b1")).boot == "b1"
    with pytest.raises(ProtocolError):
        decode_status(b'{"schema_version": 1, "state": "sleeping", "ts": 1700000000}')
    with pytest.raises(ProtocolError):
        decode_heartbeat(b'{"schema_version":1,"ts":1700000000,"uptime_s":1,"disk_free_bytes":1,'
                         b'"outbox_depth":-1,"cameras":{}}')


def test_command_round_trip():
    from protocols.messages import Command, decode_command, encode_command
    cmd = Command(command="help_coming", ts=1.7e9, alarm_id=EventIdGenerator().new())
    assert decode_command(encode_command(cmd)) == cmd
    with pytest.raises(ProtocolError):
        decode_command(b'{"schema_version": 1, "command": "self_destruct", "ts": 1700000000}')
    assert topics.parse_device_topic(topics.command(DEV)) == (DEV, "cmd")
