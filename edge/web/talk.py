"""Talk-back (远程语音核警): the pillar's microphone and speaker on a hub viewer's connection.

An operator at the hub presses push-to-talk on the ticket or device page; their voice arrives as
the connection's audio track and is played on the pillar's speaker, and the pillar's microphone
goes back on the same track pair (Opus, as WebRTC negotiates). One talk session at a time: a
pillar has one speaker. Input and output are an ALSA device through PyAV (``alsa:default``,
``alsa:hw:1,0``) or, for tests and the demo, an audio file played in a loop and a WAV file
written (the recording is finished when the session ends). ``tone-clock://HZ`` is a test
microphone for latency measurements: a 100 ms tone burst at the start of every wall-clock second.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import re
import time
from pathlib import Path

import av
import numpy as np
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamTrack

logger = logging.getLogger(__name__)


RATE = 48000
FRAME = 960  # 20 ms


class ClockTone(MediaStreamTrack):
    """``tone-clock://HZ``: a burst of HZ for the first 100 ms of every wall-clock second, silence
    between; whoever hears it knows when it was said (same clock)."""

    kind = "audio"

    def __init__(self, hz: float):
        super().__init__()
        self.hz = hz
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._pts / RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = self._start + (self._pts + np.arange(FRAME)) / RATE
        samples = ((t % 1.0) < 0.1) * 0.5 * 32767 * np.sin(2 * np.pi * self.hz * t)
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


def _media(spec: str, base: Path) -> tuple[str, str | None]:
    """(file, format) for PyAV: ``alsa:NAME`` is an ALSA device, anything else a file path."""
    if spec.startswith("alsa:"):
        return spec[len("alsa:"):] or "default", "alsa"
    path = Path(spec)
    return str(path if path.is_absolute() else base / path), None


class TalkBack:
    def __init__(self, input_spec: str | None, output_spec: str | None, base: Path):
        self.input_spec, self.output_spec, self.base = input_spec, output_spec, base
        self.session: str | None = None
        self._player: MediaPlayer | None = None
        self._tone: ClockTone | None = None
        self._recorder: MediaRecorder | None = None

    @property
    def busy(self) -> bool:
        return self.session is not None

    def open(self, session: str) -> MediaStreamTrack | None:
        """Start a talk session; the microphone's track (None without a microphone)."""
        self.session = session
        if self.input_spec is None:
            return None
        clock = re.fullmatch(r"tone-clock://(\d+(?:\.\d+)?)", self.input_spec)
        if clock:
            self._tone = ClockTone(float(clock.group(1)))
            return self._tone
        file, fmt = _media(self.input_spec, self.base)
        try:
            self._player = MediaPlayer(file, format=fmt, loop=fmt is None)
        except Exception as exc:  # PyAV's errors: a missing device or file must not fail the video
            logger.error("talk-back: cannot open the microphone %s: %s", self.input_spec, exc)
            return None
        return self._player.audio

    async def play(self, session: str, track: MediaStreamTrack) -> None:
        """The operator's voice to the speaker."""
        if session != self.session or self.output_spec is None or self._recorder is not None:
            return
        file, fmt = _media(self.output_spec, self.base)
        try:
            self._recorder = MediaRecorder(file, format=fmt)
            self._recorder.addTrack(track)
            await self._recorder.start()
        except Exception as exc:
            logger.error("talk-back: cannot open the speaker %s: %s", self.output_spec, exc)
            self._recorder = None

    async def close(self, session: str) -> None:
        if session != self.session:
            return
        self.session = None
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            try:
                await asyncio.wait_for(recorder.stop(), 2.0)
            except Exception as exc:  # includes the timeout: the recording then ends where it ended
                logger.warning("talk-back: closing the speaker: %s", exc or type(exc).__name__)
        if self._player is not None:
            player, self._player = self._player, None
            if player.audio is not None:
                player.audio.stop()
        if self._tone is not None:
            self._tone.stop()
            self._tone = None
