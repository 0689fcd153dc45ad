from __future__ import annotations

import random

import pytest

from protocols import ProtocolError
from protocols import serial as sf


def test_crc_is_ccitt_false():
    assert sf.crc16(b"123456789") == 0x29B1


def test_round_trip_split_anywhere():
    frames = [sf.Frame(i, sf.MsgType.BUTTON, sf.button(i % 2 == 0, i * 1000)) for i in range(20)]
    stream = b"".join(sf.encode(f) for f in frames)
    for cut in (1, 2, 3, 7, 64):
        dec = sf.Decoder()
        out = []
        for i in range(0, len(stream), cut):
            out += dec.feed(stream[i:i + cut])
        assert out == frames and dec.counters["frames"] == 20


def test_noise_between_frames_is_skipped_and_counted():
    rng = random.Random(7)
    good = sf.Frame(1, sf.MsgType.TAMPER, b"\x01")
    dec = sf.Decoder()
    out = dec.feed(bytes(rng.randrange(0x00, 0xA0) for _ in range(500)) + sf.encode(good) + b"\xa5\x5a\xff\x00\x00")
    assert out == [good]
    # the bad header costs its marker byte; the 4 bytes after it are noise too
    assert dec.counters["noise_bytes"] == 504 and dec.counters["bad_frame"] == 1


@pytest.mark.parametrize("frame", [
    sf.Frame(1, sf.MsgType.BUTTON, b"\x01"),          # wrong fixed size
    sf.Frame(1, sf.MsgType.CFG_CHUNK, b"\x00"),       # below the minimum
    sf.Frame(256, sf.MsgType.LED, b"\x00"),           # seq out of range
    sf.Frame(1, sf.MsgType.CFG_CHUNK, bytes(260)),    # too long
])
def test_bad_frames_are_refused_by_the_encoder(frame):
    with pytest.raises(ProtocolError):
        sf.encode(frame)


def test_unknown_type_with_a_good_crc_is_a_bad_frame():
    body = bytes((0, 1, 0x7F))
    raw = sf.SOF + body + sf.crc16(body).to_bytes(2, "big")
    dec = sf.Decoder()
    assert dec.feed(raw) == [] and dec.counters["bad_frame"] == 1
