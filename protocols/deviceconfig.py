"""The device config schema: the contract between the installer's tools (templates,
``xl-edge check-config``, ``xl-edge flash``), hub provisioning (``xl-hub device add
--template``) and the device itself. Pydantic models checked with file:line errors; pure (the
edge's ``edge/config.py`` reads the files)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from . import ProtocolError, configdoc
from .endpoint import BrokerEndpoint, check_broker_url
from .ids import check_device_id

_STRICT = ConfigDict(extra="forbid")

#: which GB/T 28181 type codes (digits 11-13 of the id) fit each device kind
KIND_TYPE_CODES = {"camera-box": ("131", "132"), "alarm-pillar": ("134",)}


class Location(BaseModel):
    model_config = _STRICT
    latitude: float = Field(description="WGS-84 latitude in degrees", ge=-90, le=90)
    longitude: float = Field(description="WGS-84 longitude in degrees", ge=-180, le=180)
    address: str = Field("", description="Human description of the place, e.g. 村委会门口", max_length=200)


class DeviceSection(BaseModel):
    model_config = _STRICT
    id: str = Field(description="20-digit GB/T 28181-style device id: civil code(8) industry(2) type(3) "
                                "network(1) serial(6)", min_length=20, max_length=20)
    kind: Literal["camera-box", "alarm-pillar"] = Field(description="Device kind")
    model: str = Field(description="Hardware model name", min_length=1, max_length=64)
    name: str = Field(description="Display name shown on the hub", min_length=1, max_length=64)
    grid_code: str = Field(description="Code of the grid (网格) the device belongs to: 12-digit village "
                                       "code plus a grid number", pattern=r"^[0-9]{12,19}$")
    location: Location = Field(description="Where the device stands")

    @field_validator("id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        try:
            return check_device_id(value)
        except ProtocolError as exc:
            raise ValueError(exc.reason) from None

    @model_validator(mode="after")
    def _kind_matches_type(self) -> "DeviceSection":
        allowed = KIND_TYPE_CODES[self.kind]
        if self.id[10:13] not in allowed:
            raise ValueError(f"a {self.kind} needs device type code {' or '.join(allowed)} "
                             f"in digits 11-13 of its id, not {self.id[10:13]}")
        return self


class BrokerSection(BrokerEndpoint, BaseModel):
    model_config = _STRICT
    url: str = Field(description="MQTT broker: mqtt://host:port or mqtts://host:port (TLS)")
    username: str | None = Field(None, description="MQTT user name; defaults to the device id", max_length=64)
    password: str | None = Field(None, description="MQTT password (prefer password_file)", min_length=8,
                                 max_length=256)
    password_file: str | None = Field(None, description="File holding the MQTT password, relative to this "
                                                        "config file; written at provisioning")
    ca_file: str | None = Field(None, description="CA certificate for mqtts:// (system CAs if unset)")
    keepalive_s: int = Field(30, description="MQTT keepalive in seconds", ge=5, le=600)
    reconnect_min_s: float = Field(1.0, description="First reconnect delay after a lost network", ge=0.1, le=60)
    reconnect_max_s: float = Field(30.0, description="Longest reconnect delay (exponential backoff cap)",
                                   ge=1, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_broker_url(value)

    @model_validator(mode="after")
    def _one_password(self) -> "BrokerSection":
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set exactly one of password or password_file")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self



class StoreSection(BaseModel):
    model_config = _STRICT
    path: str = Field("xueliang-edge.db", description="SQLite file for events and the outbox, relative to "
                                                       "this config file", min_length=1)


class SyncSection(BaseModel):
    model_config = _STRICT
    inflight_window: int = Field(200, description="Events sent but not yet acked by the hub, at most "
                                                  "(alarms may exceed it)", ge=1, le=5000)
    ack_timeout_s: float = Field(30.0, description="Resend unacked events after this long", ge=1, le=3600)
    heartbeat_interval_s: float = Field(30.0, description="Seconds between heartbeats", ge=1, le=3600)
    hub_url: str | None = Field(None, description="The hub's web address as this device reaches it "
                                "(http://HOST:PORT or https://); clips the hub asks for are uploaded there. Unset: "
                                "no clip uploads", pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$", max_length=200)
    upload_kbps: int = Field(2000, description="Most kilobits per second a clip upload takes of the uplink",
                             ge=8, le=1_000_000)
    hub_viewers_max: int = Field(4, description="Live-video sessions from the hub (through its TURN relay) this "
                                 "device sends at once; more are refused (the uplink is a few Mbit/s)", ge=0, le=16)


class PillarSection(BaseModel):
    model_config = _STRICT
    port: str = Field(description="Serial port of the pillar's microcontroller, e.g. /dev/ttyUSB0 or a udev "
                                  "symlink (relative paths are relative to this config file)", min_length=1)
    baudrate: int = Field(115200, description="Serial speed", ge=1200, le=3000000)
    merge_window_s: float = Field(10.0, description="Presses within this many seconds of the first make one "
                                                    "alarm with a press count", ge=0, le=600)
    siren_on_press: bool = Field(False, description="Sound the siren at once when the button is pressed")
    siren_duration_s: int = Field(30, description="How long the siren sounds", ge=1, le=600)
    strobe_on_press: bool = Field(True, description="Flash the strobe light at once when the button is pressed")
    volume: int = Field(80, description="Speaker volume in percent", ge=0, le=100)
    mcu_timeout_s: float = Field(5.0, description="No MCU heartbeat for this long is an mcu_lost event",
                                 ge=1, le=600)


class ProvisioningSection(BaseModel):
    model_config = _STRICT
    port: str = Field(description="USB serial console on which `xl-edge flash` can send a new config, e.g. "
                                  "/dev/ttyGS0", min_length=1)
    baudrate: int = Field(115200, description="Serial speed", ge=1200, le=3000000)


Point = tuple[float, float]


class ZoneSection(BaseModel):
    model_config = _STRICT
    name: str = Field(description="Zone name, reported with motion in it, e.g. gate", pattern=r"^[\w-]{1,32}$")
    points: list[Point] = Field(description="Polygon corners as [x, y] fractions of the picture's width and "
                                            "height (0 to 1), at least three", min_length=3, max_length=64)
    sensitivity: int = Field(50, description="1 (only large, clear motion) to 100 (the slightest change)",
                             ge=1, le=100)

    @field_validator("points")
    @classmethod
    def _fractions(cls, points: list[Point]) -> list[Point]:
        for x, y in points:
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(f"point [{x}, {y}] is outside the picture: use fractions from 0 to 1")
        return points


class MotionSection(BaseModel):
    model_config = _STRICT
    sensitivity: int = Field(50, description="1 to 100, for the whole picture when there are no zones",
                             ge=1, le=100)
    zones: list[ZoneSection] = Field(default_factory=list, description="Areas to watch, each with its own "
                                     "sensitivity; with zones, motion elsewhere is ignored", max_length=16)
    masks: list[list[Point]] = Field(default_factory=list, description="Polygons never looked at (a road, a "
                                     "clock, a flag), as [x, y] fractions", max_length=16)
    start_frames: int = Field(2, description="Frames in a row with motion before an event starts", ge=1, le=50)
    end_s: float = Field(3.0, description="Seconds without motion before the event ends", ge=0.2, le=120)
    max_event_s: float = Field(300.0, description="Longest motion event; longer motion starts a new one",
                               ge=5, le=3600)
    height: int = Field(100, description="Rows of the small picture motion is computed on", ge=40, le=360)

    @field_validator("masks")
    @classmethod
    def _mask_polygons(cls, masks: list[list[Point]]) -> list[list[Point]]:
        for polygon in masks:
            if len(polygon) < 3:
                raise ValueError("a mask needs at least three points")
            ZoneSection._fractions(polygon)
        return masks


class FacesSection(BaseModel):
    model_config = _STRICT
    enabled: bool = Field(True, description="Look for faces where there is motion")
    max_fps: float = Field(5.0, description="At most this many face detections per second per camera",
                           gt=0, le=60)
    threshold: float = Field(0.5, description="Lowest detector score that counts as a face", ge=0.05, le=0.99)
    interval_s: float = Field(5.0, description="After a face event, the next one of the same motion comes at "
                                               "the earliest this much later", ge=0, le=600)
    max_side: int = Field(320, description="Longest side, in pixels, the detector runs at", ge=64, le=1280)


class ClipsSection(BaseModel):
    model_config = _STRICT
    enabled: bool = Field(True, description="Record a clip of each motion event (stays on the device until "
                                            "asked for)")
    pre_roll_s: float = Field(5.0, description="Seconds before the motion started", ge=0, le=60)
    post_roll_s: float = Field(5.0, description="Seconds after the motion ended", ge=0, le=60)
    max_s: float = Field(120.0, description="Longest clip", ge=5, le=1800)


class CameraSection(BaseModel):
    model_config = _STRICT
    name: str = Field(description="Camera name, unique on this device, e.g. gate", pattern=r"^[a-z0-9_-]{1,32}$")
    source: str = Field(description="rtsp://user:password@host/path, a video file (played in a loop), a "
                                    "USB camera /dev/videoN, or clock://WIDTHxHEIGHT@FPS (a test camera that "
                                    "draws the time of each frame into it)", min_length=1)
    loop: bool = Field(True, description="Play a video file again from the start when it ends")
    loss_after_s: float = Field(10.0, description="A camera down this long gives a video_loss event",
                                ge=1, le=3600)
    stall_after_s: float = Field(10.0, description="A camera that is up but gives no new frame this long is "
                                                   "stalled: a video_loss event (reason stalled) and its capture "
                                                   "and pipeline are started afresh", ge=1, le=600)
    max_restarts: int = Field(3, description="Stalls within 10 minutes after which the agent stops, so that "
                                             "systemd starts it afresh", ge=1, le=100)
    motion: MotionSection = Field(default_factory=MotionSection, description="Motion detection")
    faces: FacesSection = Field(default_factory=FacesSection, description="Face detection on motion")
    clips: ClipsSection = Field(default_factory=ClipsSection, description="Clips of motion events")


class MediaSection(BaseModel):
    model_config = _STRICT
    path: str = Field("media", description="Folder for snapshots, face crops and clips, relative to this "
                                           "config file", min_length=1)
    quota_mb: int = Field(2048, description="Most disk the media may use; oldest synced clips go first",
                          ge=1, le=10_000_000)
    min_free_mb: int = Field(200, description="Disk space always left free", ge=0, le=10_000_000)
    snapshot_width: int = Field(1280, description="Width of stored snapshots (smaller pictures are kept as "
                                                  "they are)", ge=160, le=7680)
    thumb_width: int = Field(320, description="Width of the thumbnail sent to the hub with each event",
                             ge=64, le=640)
    jpeg_quality: int = Field(85, description="JPEG quality of snapshots and crops", ge=30, le=100)


class PrivacySection(BaseModel):
    model_config = _STRICT
    blur_faces: bool = Field(False, description="Blur every face in every picture that leaves the device; face "
                                                "crops are then not kept")


class WebUser(BaseModel):
    model_config = _STRICT
    name: str = Field(description="User name", pattern=r"^[\w.@-]{1,64}$")
    role: Literal["viewer", "operator"] = Field("viewer", description="viewer watches; operator also "
                                                                     "acknowledges alarms")
    password_hash: str = Field(description="Hash made by `xl-edge user hash` (never the password itself)",
                               pattern=r"^(scrypt|pbkdf2):")


class MetricsSection(BaseModel):
    model_config = _STRICT
    host: str = Field("127.0.0.1", description="Address Prometheus scrapes /metrics on (loopback by default)",
                      min_length=1)
    port: int | None = Field(None, description="Port of /metrics; none: no metrics listener", ge=1, le=65535)


class WebSection(BaseModel):
    model_config = _STRICT
    host: str = Field("0.0.0.0", description="Address the LAN page listens on (0.0.0.0: every interface)",
                      min_length=1)
    port: int = Field(8080, description="Port of the LAN page", ge=1, le=65535)
    threads: int = Field(16, description="Web server threads (each live MJPEG or event stream holds one)",
                         ge=4, le=128)
    ice_addresses: list[str] = Field(default_factory=list, description="Addresses offered to browsers for "
                                     "live video (WebRTC host candidates); empty: every interface but "
                                     "loopback. No STUN: the page is for the local network", max_length=8)
    live_width: int = Field(960, description="Width of the live video", ge=160, le=1920)
    live_fps: float = Field(15.0, description="Frames per second of the live video", ge=1, le=30)
    live_bitrate_kbps: int = Field(1500, description="Bitrate of the live video", ge=100, le=8000)
    users: list[WebUser] = Field(default_factory=list, description="Users flashed with the config (hashed "
                                 "passwords); `xl-edge user add` adds more on the device", max_length=64)
    alarm_window_s: float = Field(1800.0, description="An alarm shows on the page until acknowledged, or "
                                                      "for this long", ge=60, le=86400)


class DemoSection(BaseModel):
    model_config = _STRICT
    enabled: bool = Field(False, description="Generate sample events (for demos until cameras are set up)")
    rate_per_s: float = Field(2.0, description="Motion/face events per second", gt=0, le=10000)
    alarm_every_s: float = Field(0, description="Seconds between sample alarms; 0 for none", ge=0, le=86400)
    count: int = Field(0, description="Stop after this many events; 0 to run until stopped", ge=0)
    cameras: list[str] = Field(default_factory=lambda: ["cam1"], description="Names of simulated cameras",
                               max_length=16)


class AudioSection(BaseModel):
    model_config = _STRICT
    input: str | None = Field(None, description="Microphone for talk-back: an ALSA device (alsa:default, "
                              "alsa:hw:1,0) or an audio file played in a loop (tests, the demo); unset: the device "
                              "sends no sound", min_length=1, max_length=200)
    output: str | None = Field(None, description="Speaker for talk-back: an ALSA device (alsa:default) or a WAV file "
                               "the operator's voice is written to (tests, the demo); unset: the operator is "
                               "not played", min_length=1, max_length=200)


class EdgeConfig(BaseModel):
    model_config = _STRICT
    device: DeviceSection = Field(description="Identity of this device")
    broker: BrokerSection = Field(description="How to reach the hub's MQTT broker")
    store: StoreSection = Field(default_factory=StoreSection, description="Local event store")
    sync: SyncSection = Field(default_factory=SyncSection, description="Edge to hub sync")
    pillar: PillarSection | None = Field(None, description="Alarm pillar microcontroller (alarm-pillar only)")
    provisioning: ProvisioningSection | None = Field(None, description="Take new configs over a serial console")
    cameras: list[CameraSection] = Field(default_factory=list, description="Cameras of this device",
                                         max_length=8)
    media: MediaSection = Field(default_factory=MediaSection, description="Snapshots, face crops and clips")
    privacy: PrivacySection = Field(default_factory=PrivacySection, description="Privacy")
    web: WebSection | None = Field(None, description="The LAN page for village monitors (live video, events, "
                                                     "alarms); leave out to serve no page")
    demo: DemoSection = Field(default_factory=DemoSection, description="Sample event generator")
    audio: AudioSection | None = Field(None, description="Talk-back with the hub (远程语音核警): the pillar's "
                                                         "microphone and speaker")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Prometheus metrics (names in "
                                                                              "the README)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")

    # set by parse_config: the folder that relative paths are resolved against
    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _pillar_only_on_pillars(self) -> "EdgeConfig":
        if self.pillar is not None and self.device.kind != "alarm-pillar":
            raise ValueError("a pillar section needs device.kind alarm-pillar")
        return self

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraSection]) -> list[CameraSection]:
        names = [c.name for c in cameras]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"camera name {name!r} is used twice")
        return cameras

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self._base_dir / p

    def mqtt_username(self) -> str:
        return self.broker.username or self.device.id



def parse_config(text: str, filename: str) -> EdgeConfig:
    """Check ``text`` as the device config named ``filename`` (relative paths in it are taken
    from that file's folder)."""
    cfg = configdoc.load(text, filename, EdgeConfig)
    cfg._base_dir = Path(filename).absolute().parent
    return cfg


class McuParams(BaseModel):
    """Parameters of the pillar's microcontroller, flashed with `xl-edge flash --target mcu`."""

    model_config = _STRICT
    debounce_ms: int = Field(30, description="Button presses closer than this are contact bounce", ge=5, le=500)
    siren_duration_s: int = Field(30, description="Siren duration when the MCU sounds it on its own", ge=1, le=600)
    heartbeat_s: float = Field(1.0, description="Seconds between MCU heartbeats", ge=0.2, le=60)


def parse_mcu_params(text: str, filename: str) -> McuParams:
    return configdoc.load(text, filename, McuParams)
