"""The strict decoder: every payload either raises ProtocolError or is a message that SQLite and
PostgreSQL store and that the hub API serves as valid JSON (hypothesis property tests)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import auth, eventlog, registry
from hub.web import create_app
from protocols import ProtocolError, strictjson
from protocols.ids import EventIdGenerator
from protocols.messages import (MAX_DEPTH, decode_ack, decode_command, decode_event, decode_heartbeat,
                                decode_hub_status, decode_status)

from .helpers import device_id

DEV = device_id(1)
IDS = EventIdGenerator()


def _event(**over) -> dict:
    return {"schema_version": 1, "id": IDS.new(), "device_id": DEV, "type": "motion", "ts": time.time(),
            "seq": 1, "priority": 1, "data": {}, **over}


def _raw(obj) -> bytes:
    return json.dumps(obj).encode()


# --- the findings, one by one ----------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("payload,reason", [
    (_raw(_event()).replace(b'"data": {}', b'"data": {"x": ' + _nested(100_000).encode() + b'}'), "nested deeper"),
    (_raw(_event()).replace(b'"data": {}', b'"data": {"x": ' + _nested(MAX_DEPTH).encode() + b'}'), "nested deeper"),
    (_raw(_event(seq=2 ** 64)), "64 bits"),
    (_raw(_event(seq=2 ** 63)), "64 bits"),
    (_raw(_event(data={"n": 10 ** 400})), "64 bits"),
    (_raw(_event(data={"x": float("nan")})), "NaN"),
    (_raw(_event(data={"x": [float("inf")]})), "Infinity"),
    (_raw(_event()).replace(b'"data": {}', b'"data": {"x": 1e999}'), "not finite"),
    (_raw(_event(data={"x": "a\x00b"})), "NUL"),
    (_raw(_event(data={"a\x00": 1})), "NUL"),
    (_raw(_event()).replace(b'"data": {}', b'"data": {"x": "\\ud800"}'), "surrogate"),
    (_raw(_event()).replace(b'"data": {}', b'"data": {"x": 1, "x": 2}'), "twice"),
    (json.dumps(_event(), ensure_ascii=False).encode("utf-16"), "not UTF-8"),
    (json.dumps(_event(), ensure_ascii=False).encode("utf-16-le"), "not UTF-8"),
    (json.dumps(_event(), ensure_ascii=False).encode("utf-32"), "not UTF-8"),
    ("\ufeff".encode() + _raw(_event()), "byte-order mark"),
    (_raw(_event(id=IDS.new() + "\n")), "UUIDv7"),
    (_raw(_event(type="motion\n")), "event type"),
    (_raw(_event(device_id=DEV + "\n")), "20 digits"),
])
def test_the_strict_decoder_refuses(payload, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_event(payload, topic_device=DEV)


def test_limits_are_just_wide_enough():
    # MAX_DEPTH levels in all (the event object is level 1) pass, one more does not
    inner = _nested(MAX_DEPTH - 2)
    ok = _raw(_event()).replace(b'"data": {}', b'"data": {"x": ' + inner.encode() + b'}')
    assert decode_event(ok, topic_device=DEV).data["x"] is not None
    assert decode_event(_raw(_event(seq=2 ** 63 - 1))).seq == 2 ** 63 - 1
    assert decode_event(_raw(_event(data={"name": "村口 🚨"}))).data == {"name": "村口 🚨"}


def test_status_fields_are_bounded():
    base = {"schema_version": 1, "state": "online", "ts": time.time()}
    assert decode_status(_raw({**base, "location": {"latitude": 30.1, "longitude": 120.2, "x": 1}})).location \
        == {"latitude": 30.1, "longitude": 120.2}
    for bad in ({"location": {"latitude": 91}}, {"location": {"longitude": "east"}}, {"model": "m" * 65},
                {"grid_code": "1" * 20}, {"state": "online\n"}):
        with pytest.raises(ProtocolError):
            decode_status(_raw({**base, **bad}))


def test_strictjson_dumps_refuses_nan():
    with pytest.raises(ValueError):
        strictjson.dumps({"x": math.nan})


# --- property tests ---------------------------------------------------------------------------------

# values that broke the hub before: they must be drawn often, not left to chance
nasty = st.sampled_from([math.nan, math.inf, -math.inf, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30, 1e308,
                         "\x00", "a\x00", "\ud800", "x\n", "", 2 ** 63 - 1, -(2 ** 63)])
json_scalars = nasty | st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70) \
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


event_payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(_dump),
    st.fixed_dictionaries({}, optional={
        "schema_version": st.sampled_from([1, 2, True, "1"]), "id": st.builds(lambda: IDS.new()) | st.text(max_size=40),
        "device_id": st.just(DEV) | st.text(max_size=22), "type": st.sampled_from(["motion", "alarm", "x\n", ""]),
        "ts": st.floats(allow_nan=True) | st.integers(), "seq": st.integers(min_value=-5, max_value=2 ** 65),
        "priority": st.integers(min_value=-1, max_value=5), "data": json_values}).map(_dump),
    st.builds(lambda data, seq: _dump(_event(data=data, seq=seq)),
              st.dictionaries(st.text(max_size=8), json_values, max_size=5),
              st.integers(min_value=0, max_value=2 ** 64) | nasty),
    st.integers(min_value=1, max_value=3000).map(lambda depth: _dump(_event()).replace(
        b'"data": {}', b'"data": {"x": ' + _nested(depth).encode() + b'}')),
)

other_payloads = st.one_of(
    st.binary(max_size=120), json_values.map(_dump),
    st.builds(lambda extra: _dump({"schema_version": 1, "state": "online", "ts": time.time(), **extra}),
              st.dictionaries(st.sampled_from(["kind", "model", "software", "grid_code", "location", "state"]),
                              json_values, max_size=4)),
    st.builds(lambda cams, n: _dump({"schema_version": 1, "ts": time.time(), "uptime_s": 1, "disk_free_bytes": n,
                                     "outbox_depth": 0, "cameras": cams}),
              st.dictionaries(st.text(max_size=8), json_values, max_size=3), st.integers(min_value=-1, max_value=2 ** 64)),
)


def _no_constants(name):
    raise AssertionError(f"the API served {name}, which is not JSON")


def _valid_json(body: bytes) -> None:
    """Independent of the code under test: RFC 8259 JSON in UTF-8, nothing else."""
    json.loads(body.decode("utf-8"), parse_constant=_no_constants)


def _store_and_serve(engine, client, token, ev=None, status=None, heartbeat=None) -> None:
    with engine.begin() as conn:
        registry.ensure_devices(conn, {DEV})
        if ev is not None:
            eventlog.store_events(conn, [ev])
        if status is not None:
            registry.set_status(conn, DEV, status, live=True)
        if heartbeat is not None:
            registry.set_heartbeat(conn, DEV, asdict(heartbeat))
    for path in ("/api/v1/events?limit=5", "/api/v1/devices"):
        resp = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, path
        _valid_json(resp.data)


@pytest.fixture
def served(engine):
    auth.add_user(engine, "admin", "correct horse battery", "admin")
    app = create_app(engine, secret_key="k" * 40, offline_after_s=60,
                     health=lambda: {"broker_connected": True, "ingest": {}})
    return engine, app.test_client(), auth.create_token(engine, "admin", "t")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@FUZZ
@given(payload=event_payloads)
def test_an_event_decodes_fully_or_raises_and_what_decodes_is_stored_and_served(served, payload):
    engine, client, token = served
    try:
        ev = decode_event(payload, topic_device=DEV)
    except ProtocolError:
        return
    _store_and_serve(engine, client, token, ev=ev)


@FUZZ
@given(payload=other_payloads)
def test_status_and_heartbeat_decode_fully_or_raise_and_are_stored_and_served(served, payload):
    engine, client, token = served
    for decode, kw in ((decode_status, "status"), (decode_heartbeat, "heartbeat")):
        try:
            msg = decode(payload)
        except ProtocolError:
            continue
        _store_and_serve(engine, client, token, **{kw: msg})


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(st.binary(max_size=200), json_values.map(_dump)))
def test_edge_side_decoders_raise_only_protocol_errors(payload):
    for decode in (decode_ack, decode_command, decode_hub_status):
        try:
            decode(payload)
        except ProtocolError:
            pass
