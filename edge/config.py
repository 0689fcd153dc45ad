"""Edge agent configuration: pydantic models checked with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from protocols.endpoint import BrokerEndpoint, check_broker_url
from protocols import ProtocolError, configdoc
from protocols.ids import check_device_id

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


class DemoSection(BaseModel):
    model_config = _STRICT
    enabled: bool = Field(False, description="Generate sample events (for demos until cameras are set up)")
    rate_per_s: float = Field(2.0, description="Motion/face events per second", gt=0, le=10000)
    alarm_every_s: float = Field(0, description="Seconds between sample alarms; 0 for none", ge=0, le=86400)
    count: int = Field(0, description="Stop after this many events; 0 to run until stopped", ge=0)
    cameras: list[str] = Field(default_factory=lambda: ["cam1"], description="Names of simulated cameras",
                               max_length=16)


class EdgeConfig(BaseModel):
    model_config = _STRICT
    device: DeviceSection = Field(description="Identity of this device")
    broker: BrokerSection = Field(description="How to reach the hub's MQTT broker")
    store: StoreSection = Field(default_factory=StoreSection, description="Local event store")
    sync: SyncSection = Field(default_factory=SyncSection, description="Edge to hub sync")
    pillar: PillarSection | None = Field(None, description="Alarm pillar microcontroller (alarm-pillar only)")
    provisioning: ProvisioningSection | None = Field(None, description="Take new configs over a serial console")
    demo: DemoSection = Field(default_factory=DemoSection, description="Sample event generator")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")

    # set by parse_config: the folder that relative paths are resolved against
    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _pillar_only_on_pillars(self) -> "EdgeConfig":
        if self.pillar is not None and self.device.kind != "alarm-pillar":
            raise ValueError("a pillar section needs device.kind alarm-pillar")
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self._base_dir / p

    def mqtt_username(self) -> str:
        return self.broker.username or self.device.id

    def mqtt_password(self) -> str:
        if self.broker.password is not None:
            return self.broker.password
        path = self.resolve(self.broker.password_file or "")
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise configdoc.ConfigError([configdoc.ConfigIssue(
                str(path), 1, "broker.password_file", str(path), f"cannot read the password file: {exc.strerror}")])


def parse_config(text: str, filename: str) -> EdgeConfig:
    cfg = configdoc.load(text, filename, EdgeConfig)
    cfg._base_dir = Path(filename).resolve().parent
    return cfg


def load_config(path: str | Path) -> EdgeConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise configdoc.ConfigError([configdoc.ConfigIssue(str(path), 0, "", None,
                                                           f"cannot read: {exc.strerror}")]) from None
    return parse_config(text, str(path))


class McuParams(BaseModel):
    """Parameters of the pillar's microcontroller, flashed with `xl-edge flash --target mcu`."""

    model_config = _STRICT
    debounce_ms: int = Field(30, description="Button presses closer than this are contact bounce", ge=5, le=500)
    siren_duration_s: int = Field(30, description="Siren duration when the MCU sounds it on its own", ge=1, le=600)
    heartbeat_s: float = Field(1.0, description="Seconds between MCU heartbeats", ge=0.2, le=60)


def parse_mcu_params(text: str, filename: str) -> McuParams:
    return configdoc.load(text, filename, McuParams)
