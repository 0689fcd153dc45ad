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


# --- property tests (hypothesis): hostile bytes on the serial line ---------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FRAMES = st.builds(lambda seq, pressed, tick: sf.Frame(seq, sf.MsgType.BUTTON, sf.button(pressed, tick)),
                    st.integers(0, 255), st.booleans(), st.integers(0, 2 ** 32 - 1)) | \
    st.builds(lambda seq, tick: sf.Frame(seq, sf.MsgType.HEARTBEAT, sf.heartbeat(tick)),
              st.integers(0, 255), st.integers(0, 2 ** 32 - 1))
_NOISE = st.binary(max_size=300) | st.lists(st.sampled_from([sf.SOF, b"\xa5", b"\x5a", b"\xff", b"\x00"]),
                                            max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(1, 64), max_size=50))
def test_the_decoder_takes_any_bytes_in_any_pieces(data, cuts):
    dec = sf.Decoder()
    pos, frames = 0, []
    for cut in cuts + [len(data)]:
        frames += dec.feed(data[pos:pos + cut])
        pos += cut
    dec.drop_partial()
    for f in frames:  # whatever comes out is a whole, valid frame
        assert sf.check_payload(f.type, f.payload) == f.type and 0 <= f.seq <= 255
        assert sf.encode(f)  # and can be sent again as it is
    assert dec.pending == 0


@settings(max_examples=300, deadline=None)
@given(noise=_NOISE, frames=st.lists(_FRAMES, min_size=1, max_size=5))
def test_good_frames_after_noise_are_all_recovered(noise, frames):
    dec = sf.Decoder()
    out = dec.feed(noise + b"".join(sf.encode(f) for f in frames))
    # the noise may hold a start marker whose made-up length swallows bytes, but the decoder
    # resynchronises one byte at a time on a bad CRC, so every real frame still comes out last
    assert out[-len(frames):] == frames


@settings(max_examples=300, deadline=None)
@given(msg_type=st.integers(0, 255), payload=st.binary(max_size=300), seq=st.integers(-5, 300))
def test_encode_refuses_what_it_cannot_send(msg_type, payload, seq):
    try:
        raw = sf.encode(sf.Frame(seq, msg_type, payload))
    except ProtocolError:
        return
    assert sf.Decoder().feed(raw) == [sf.Frame(seq, sf.MsgType(msg_type), payload)]
