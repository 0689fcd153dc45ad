"""Live view over WebRTC (aiortc): each viewer's peer connection, fed by the camera's shared
encoder (``edge.web.encoder``). Each viewer gets a track that hands aiortc the already encoded
packets (aiortc packetises them; it does not encode again). ``LiveServer`` runs aiortc on its own asyncio thread. On the LAN, signalling is one HTTP POST
(offer in, answer out) made by the web app and ICE uses host candidates only, no STUN, on
configurable addresses. From the hub, the offer comes over MQTT (``hub_request``) with the
session's TURN servers: the device reaches the relay outbound and nothing on it listens for the
hub; the hub's browsers use the relay only. Talk-back (``edge.web.talk``) is an audio track on
a hub viewer's connection. The asyncio thread owns the viewers and the talk-back: everything
that reads or changes them runs there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from protocols.live import LiveAnswer, LiveRequest

from .encoder import LiveEncoder, Subscriber

logger = logging.getLogger(__name__)

CLOSE_S = 1.5  # closing the viewers at stop takes at most this
WALL_WIDTH, WALL_FPS, WALL_BITRATE = 480, 8.0, 400_000  # a video-wall tile's stream


def make_live_server(cfg, vision) -> "LiveServer":
    """The device's live server: per camera one encoder for single views and one smaller for
    video-wall tiles (each encodes only while someone watches it)."""
    from protocols.deviceconfig import WebSection
    w = cfg.web or WebSection()
    encoders = {name: LiveEncoder(name, cam.latest, width=w.live_width, fps=w.live_fps,
                                  bitrate=w.live_bitrate_kbps * 1000) for name, cam in vision.cameras.items()}
    wall = {name: LiveEncoder(f"{name}-wall", cam.latest, width=min(WALL_WIDTH, w.live_width),
                              fps=min(WALL_FPS, w.live_fps), bitrate=WALL_BITRATE)
            for name, cam in vision.cameras.items()}
    talk = None
    if cfg.audio is not None:
        from .talk import TalkBack
        talk = TalkBack(cfg.audio.input, cfg.audio.output, cfg.resolve("."))
    return LiveServer(encoders, w.ice_addresses or None, wall_encoders=wall,
                      hub_viewers_max=cfg.sync.hub_viewers_max, talk=talk)


@dataclass(eq=False)
class Viewer:
    pc: object
    camera: str
    sub: Subscriber
    session: str | None = None  # the hub's session id; None for a LAN viewer


class LiveServer:
    """aiortc on its own asyncio thread."""

    def __init__(self, encoders: dict[str, LiveEncoder], ice_addresses: list[str] | None = None, *,
                 wall_encoders: dict[str, LiveEncoder] | None = None, hub_viewers_max: int = 4, talk=None):
        self.encoders = encoders
        self.talk = talk  # edge.web.talk.TalkBack: the pillar's microphone and speaker, if it has them
        self.wall_encoders = wall_encoders or {}
        self.hub_viewers_max = hub_viewers_max
        self.ice_addresses = ice_addresses
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="webrtc", daemon=True)
        self.viewers: set[Viewer] = set()
        if ice_addresses:
            _restrict_host_candidates(ice_addresses)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        for enc in [*self.encoders.values(), *self.wall_encoders.values()]:
            enc.start()

    def stop(self) -> None:
        for enc in [*self.encoders.values(), *self.wall_encoders.values()]:
            enc.stop()
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._close_all(), self.loop)
            try:
                fut.result(timeout=CLOSE_S + 0.5)
            except Exception:  # closing is best effort at shutdown
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=1.0)

    def alive(self) -> bool:
        return self._thread.is_alive()

    async def _close_all(self) -> None:
        """Close every peer connection at once, for at most ``CLOSE_S`` (a viewer that went away
        without a word can keep a close waiting on its transports)."""
        closing = [v.pc.close() for v in list(self.viewers)]
        if closing:
            try:
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_S)
            except asyncio.TimeoutError:
                logger.warning("%d live viewer(s) not closed within %.1f s at stop", len(closing), CLOSE_S)

    def answer(self, camera: str, sdp: str, kind: str, timeout: float = 15.0) -> dict:
        """Take a browser's offer for ``camera``; return the answer (blocking, for the web app)."""
        fut = asyncio.run_coroutine_threadsafe(self._answer(camera, sdp, kind), self.loop)
        return fut.result(timeout=timeout)

    def viewer_count(self, camera: str) -> int:
        return sum(1 for v in list(self.viewers) if v.camera == camera)  # a snapshot: the loop changes the set

    def hub_viewer_count(self) -> int:
        return sum(1 for v in list(self.viewers) if v.session is not None)

    def hub_request(self, req: LiveRequest, reply: Callable[[LiveAnswer], None]) -> None:
        """An offer or a close from the hub (called on the MQTT thread; never blocks it). It is
        handled on the asyncio thread, which owns the viewers and the talk-back, so the limits are
        checked and the viewer added with nothing in between; the answer, or the reason for
        refusing, goes to ``reply`` from there."""
        work = self._close_session(req.session) if req.op == "close" else self._hub_offer(req, reply)
        asyncio.run_coroutine_threadsafe(work, self.loop)

    async def _hub_offer(self, req: LiveRequest, reply: Callable[[LiveAnswer], None]) -> None:
        def refuse(reason: str) -> None:
            logger.info("live session %s refused: %s", req.session, reason)
            reply(LiveAnswer(session=req.session, ts=time.time(), error=reason))

        encoders = self.wall_encoders if req.quality == "wall" and self.wall_encoders else self.encoders
        if req.camera not in encoders:
            return refuse(f"no camera {req.camera!r} on this device")
        if self.hub_viewer_count() >= self.hub_viewers_max:
            return refuse(f"this device already sends {self.hub_viewers_max} hub viewer(s), its limit")
        audio = req.audio
        if audio and self.talk is not None and self.talk.busy:  # one speaker: this viewer only watches
            logger.info("live session %s: the pillar already talks with another operator; video only", req.session)
            audio = False
        servers = [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                   for s in req.ice_servers]
        try:
            answer = await self._answer(req.camera, req.sdp, "offer", ice_servers=servers, session=req.session,
                                        encoder=encoders[req.camera], audio=audio)
        except Exception as exc:  # a bad offer, an ICE failure: the hub is told, the agent goes on
            logger.warning("live session %s: %s", req.session, exc)
            return refuse(f"cannot answer the offer: {type(exc).__name__}: {str(exc)[:120]}")
        reply(LiveAnswer(session=req.session, ts=time.time(), sdp=without_host_candidates(answer["sdp"])))

    async def _close_session(self, session: str) -> None:
        for v in [v for v in self.viewers if v.session == session]:
            await v.pc.close()

    async def _answer(self, camera: str, sdp: str, kind: str, *, ice_servers: list | None = None,
                      session: str | None = None, encoder: LiveEncoder | None = None, audio: bool = False) -> dict:
        encoder = encoder or self.encoders[camera]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or []))
        track = PacketTrack()
        loop = self.loop

        def deliver(packet: av.Packet) -> None:
            loop.call_soon_threadsafe(track.push, packet)

        sub = encoder.subscribe(deliver)
        track.on_taken = sub.taken
        viewer = Viewer(pc, camera, sub, session)
        self.viewers.add(viewer)

        talk = self.talk if audio and session is not None and self.talk is not None else None

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed", "disconnected"):
                encoder.unsubscribe(sub)
                self.viewers.discard(viewer)
                if talk is not None:  # the speaker and microphone are let go on their own
                    asyncio.ensure_future(talk.close(session))
                if pc.connectionState != "closed":
                    await pc.close()

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio" and talk is not None:  # the operator's voice, to the speaker
                asyncio.ensure_future(talk.play(session, remote))

        if talk is not None:  # the pillar's microphone back on the same connection
            mic = talk.open(session)
            if mic is not None:
                pc.addTrack(mic)

        # the track and its codec (H.264: what the shared encoder makes) before the offer, so the
        # offer's video section is matched to this transceiver and the answer names only H.264
        sender = pc.addTrack(track)
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
        next(t for t in pc.getTransceivers() if t.sender == sender).setCodecPreferences(h264)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


def without_host_candidates(sdp: str) -> str:
    """The answer for a hub viewer without the device's LAN addresses: the hub's browsers reach it
    only through its NAT (server-reflexive) or the relay, and a private village address is
    nobody's business at the county (a relay told to send to an unroutable address can even
    drop the viewer's allocation: coturn closes it on the error that comes back)."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not (line.startswith("a=candidate:") and " typ host" in line))


class PacketTrack(MediaStreamTrack):
    """A video track whose ``recv`` returns already encoded H.264 packets."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.Packet] = asyncio.Queue()
        self.on_taken: Callable[[], None] = lambda: None

    def push(self, packet: av.Packet) -> None:
        self.queue.put_nowait(packet)

    async def recv(self) -> av.Packet:
        packet = await self.queue.get()
        self.on_taken()
        return packet


def _restrict_host_candidates(addresses: list[str]) -> None:
    """Offer only these host addresses (aioice otherwise offers every interface but loopback)."""
    import aioice.ice
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [a for a in chosen
                                                                 if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
