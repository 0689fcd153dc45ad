"""The clip ring: a camera's recent compressed packets, so a motion clip can start before the
motion did (pre-roll), cut at a keyframe, without re-encoding."""

from __future__ import annotations

from collections import deque

from .capture import Packet

class ClipRing:
    """The last ``seconds`` of compressed packets, always starting at a keyframe."""

    def __init__(self, seconds: float, max_bytes: int = 64 << 20):
        self.seconds, self.max_bytes = seconds, max_bytes
        self.packets: deque[Packet] = deque()
        self.keys: deque[Packet] = deque()
        self.bytes = 0

    def add(self, p: Packet) -> None:
        if self.packets and self.packets[0].session is not p.session:
            self.packets.clear()
            self.keys.clear()
            self.bytes = 0
        if not self.packets and not p.key:
            return  # a clip can only start at a keyframe
        self.packets.append(p)
        self.bytes += len(p.data)
        if p.key:
            self.keys.append(p)
        cutoff = p.t - self.seconds
        while len(self.keys) >= 2 and (self.keys[1].t <= cutoff or self.bytes > self.max_bytes):
            self.keys.popleft()
            while self.packets[0] is not self.keys[0]:
                self.bytes -= len(self.packets.popleft().data)

    def since(self, t: float) -> list[Packet]:
        """Packets from the last keyframe at or before ``t`` (or the oldest one) on."""
        start = None
        for k in self.keys:
            if k.t <= t or start is None:
                start = k
        if start is None:
            return []
        out, taking = [], False
        for p in self.packets:
            taking = taking or p is start
            if taking:
                out.append(p)
        return out
