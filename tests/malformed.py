"""Malformed payloads, generated: each class of defect the hub's ingest must refuse without harm."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator

from protocols import ProtocolError
from protocols.ids import EventIdGenerator
from protocols.messages import decode_event, decode_heartbeat, decode_status

DECODERS: dict[str, Callable] = {"event": decode_event, "status": decode_status, "heartbeat": decode_heartbeat}


def _good(device: str, ids: EventIdGenerator, rng: random.Random) -> dict:
    return {"schema_version": 1, "id": ids.new(), "device_id": device, "type": "motion", "ts": time.time(),
            "seq": rng.randrange(1 << 40), "priority": 1, "data": {"camera": "gate", "peak_area": 0.1}}


def _mutations(device: str, ids: EventIdGenerator,
               rng: random.Random) -> tuple[Callable[[], bytes], list[Callable[[], bytes]]]:
    def dumps(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode()

    def with_data(raw: str) -> bytes:
        return dumps(_good(device, ids, rng)).replace(b'"data": {', b'"data": {"x": ' + raw.encode() + b", ", 1)

    def nested() -> bytes:
        depth = rng.choice([17, 100, 1000, 100_000])
        return with_data("[" * depth + "]" * depth)

    def bad_field() -> bytes:
        name = rng.choice(["id", "device_id", "type", "ts", "seq", "priority", "data", "schema_version"])
        value = rng.choice([None, True, -1, 2 ** 64, 2 ** 63, "x", "", [], {}, 1e400 * 0, "\n", 12.5])
        return dumps({**_good(device, ids, rng), name: value})

    def trailing_newline() -> bytes:
        name = rng.choice(["id", "device_id", "type"])
        ev = _good(device, ids, rng)
        return dumps({**ev, name: ev[name] + rng.choice(["\n", " ", "\x00", "\t"])})

    def missing() -> bytes:
        ev = _good(device, ids, rng)
        del ev[rng.choice(list(ev))]
        return dumps(ev)

    def encoding() -> bytes:
        return dumps(_good(device, ids, rng)).decode().encode(rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-16-be"]))

    def garbage() -> bytes:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))

    def truncated() -> bytes:
        raw = dumps(_good(device, ids, rng))
        return raw[:rng.randrange(len(raw) - 1)]

    def other_device() -> bytes:
        return dumps({**_good(device, ids, rng), "device_id": "33010200001310" + f"{rng.randrange(999999):06d}"})

    def too_big() -> bytes:
        return with_data('"' + "x" * (1024 * 1024) + '"')

    return too_big, [
        lambda: with_data(rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])),
        lambda: with_data(str(rng.choice([2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 100]))),
        lambda: with_data(rng.choice(['"a\\u0000b"', '"\\ud800"', '"\\udfff x"'])),
        lambda: with_data('{"k": 1, "k": 2}'),
        nested, bad_field, trailing_newline, missing, encoding, garbage, truncated, other_device,
        lambda: b"\xef\xbb\xbf" + dumps(_good(device, ids, rng)),
        lambda: dumps(rng.choice([[1, 2], None, "s", 3, True])),
    ]


def malformed(device: str, count: int, seed: int = 1) -> Iterator[tuple[str, bytes]]:
    """``count`` (channel, payload) pairs for ``device``, each refused by that channel's decoder
    (checked here, so that the hub must count exactly ``count``)."""
    rng = random.Random(seed)
    ids = EventIdGenerator()
    too_big, mutations = _mutations(device, ids, rng)
    made = 0
    while made < count:
        channel = rng.choice(list(DECODERS))
        # one in 500 is over the size limit (each is 1 MiB on the wire)
        payload = too_big() if made % 500 == 499 else rng.choice(mutations)()
        try:
            if channel == "event":
                decode_event(payload, topic_device=device)
            else:
                DECODERS[channel](payload)
        except ProtocolError:
            made += 1
            yield channel, payload
