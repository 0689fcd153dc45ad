"""Hub configuration: pydantic models checked with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from common.configfile import missing_files as check_files, read_config_text
from protocols.endpoint import BrokerEndpoint, check_broker_url
from protocols import configdoc

_STRICT = ConfigDict(extra="forbid")


class DatabaseSection(BaseModel):
    model_config = _STRICT
    url: str = Field("sqlite:///xueliang-hub.db",
                     description="SQLAlchemy URL: sqlite:///FILE (relative to this config file) or "
                                 "postgresql+psycopg://user@host/db")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value


class EmbeddedBrokerSection(BaseModel):
    model_config = _STRICT
    host: str = Field("127.0.0.1", description="Address the embedded broker listens on (loopback by default)")
    port: int = Field(1883, description="TCP port of the embedded broker", ge=1, le=65535)


class BrokerSection(BrokerEndpoint, BaseModel):
    model_config = _STRICT
    url: str = Field(description="External MQTT broker (Mosquitto in production): mqtt://host:port or mqtts://")
    username: str = Field(description="The hub's MQTT user", min_length=1, max_length=64)
    password_file: str = Field(description="File holding the hub's MQTT password, relative to this config file")
    ca_file: str | None = Field(None, description="CA certificate for mqtts:// (system CAs if unset)")
    client_id: str = Field("xl-hub-ingest", description="MQTT client id; unique per ingest worker",
                           min_length=1, max_length=64)
    share_group: str | None = Field(None, description="Shared-subscription group ($share/GROUP/...) so that "
                                                      "several ingest workers split the load", max_length=32)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_broker_url(value)



class WebSection(BaseModel):
    model_config = _STRICT
    host: str = Field("127.0.0.1", description="Address of the web UI and API")
    port: int = Field(8080, description="TCP port of the web UI and API", ge=1, le=65535)
    secret_key_file: str = Field("secret_key", description="File with the session signing key, relative to this "
                                                          "config file; made (random, mode 0600) if missing")
    threads: int = Field(8, description="Web worker threads", ge=1, le=64)


class IngestSection(BaseModel):
    model_config = _STRICT
    batch_max: int = Field(500, description="Most events stored in one transaction", ge=1, le=5000)
    offline_after_s: float = Field(90.0, description="A device not heard from for this long is offline "
                                                     "(3 heartbeats)", ge=5, le=86400)


class TicketRule(BaseModel):
    model_config = _STRICT
    event: Literal["motion", "face"] = Field(description="Event type the rule looks at")
    zones: list[str] = Field(default_factory=list, description="Only events in one of these zones (empty: any)",
                             max_length=32)
    start: str = Field("00:00", description="Local time the rule starts each day (HH:MM)",
                       pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field("24:00", description="Local time it ends (HH:MM; earlier than start means overnight)",
                     pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
    category: str = Field(description="Category of the tickets it opens", min_length=1, max_length=32)
    severity: Literal["normal", "urgent"] = Field("normal", description="Severity of the tickets it opens")
    title: str = Field(description="Title of the tickets it opens", min_length=1, max_length=200)


class DispatchSection(BaseModel):
    model_config = _STRICT
    lease_s: float = Field(15.0, description="Jobs that run on one hub node (escalation, commands, webhooks, "
                                             "sweeps) hold a lease this long; another node takes over this long "
                                             "after the holder dies", ge=2, le=600)
    escalate_every_s: float = Field(30.0, description="Seconds between checks for overdue tickets and silent "
                                                      "devices", ge=1, le=3600)
    offline_ticket_after_s: float = Field(3600.0, description="A registered device silent this long gets a "
                                                             "maintenance ticket", ge=60, le=30 * 86400)
    rules: list[TicketRule] = Field(default_factory=list, description="Face and motion events that open "
                                                                      "tickets, e.g. motion in a zone at night",
                                    max_length=100)


PARTY_NAMES = ("grid_workers", "village_monitor", "police_station", "town_centre", "county_centre")


class WebhookSection(BaseModel):
    model_config = _STRICT
    name: str = Field(description="Name of this channel (shown on the ticket page)", min_length=1, max_length=64,
                      pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(description="http:// or https:// URL that receives a POST per notification (an SMS gateway, "
                                 "a police system)", pattern=r"^https?://[^\s]+$", max_length=500)
    secret_file: str = Field(description="File holding the HMAC-SHA256 key that signs each body (header "
                                         "X-Xueliang-Signature: sha256=<hex>), relative to this config file")
    parties: list[Literal["grid_workers", "village_monitor", "police_station", "town_centre", "county_centre"]] = \
        Field(description="Parties whose notifications go to this webhook", min_length=1)
    scope: str | None = Field(None, description="Only notifications of this area or grid (code prefix); all if "
                                                "unset", pattern=r"^[0-9]{6,19}$")
    timeout_s: float = Field(5.0, description="Seconds to wait for the receiver", gt=0, le=60)


class NotifySection(BaseModel):
    model_config = _STRICT
    webhooks: list[WebhookSection] = Field(default_factory=list, description="Outgoing webhooks per party",
                                           max_length=50)
    retry_min_s: float = Field(1.0, description="First retry after a failed delivery; doubles each time",
                               gt=0, le=3600)
    retry_max_s: float = Field(300.0, description="Longest wait between retries", gt=0, le=86400)
    give_up_after_s: float = Field(86400.0, description="A delivery still failing this long after the "
                                                       "notification is given up (and shown so)", ge=60)


class LiveSection(BaseModel):
    model_config = _STRICT
    turn_urls: list[str] = Field(default_factory=list, description="The county's TURN relay (coturn) as browsers "
                                 "and devices reach it, e.g. turn:turn.example.gov.cn:3478?transport=udp; empty: "
                                 "no live video from the hub", max_length=4)
    turn_secret_file: str = Field("turn_secret", description="Shared secret of the TURN REST API scheme (coturn's "
                                  "static-auth-secret), relative to this config file; `xl-hub turn-config` makes it")
    turn_realm: str = Field("xueliang", description="TURN realm", min_length=1, max_length=64,
                            pattern=r"^[A-Za-z0-9_.-]+$")
    credential_ttl_s: int = Field(3600, description="How long a session's TURN credentials are valid", ge=60,
                                  le=86400)
    viewers_per_device: int = Field(2, description="Hub viewers of one device at once (village uplinks are a few "
                                    "Mbit/s); more are refused with who is watching", ge=1, le=16)
    require_reason: bool = Field(False, description="A viewer must give a reason (视频调阅事由) to start a view")
    answer_timeout_s: float = Field(10.0, description="How long the hub waits for the device's answer", gt=0,
                                    le=60)
    keepalive_timeout_s: float = Field(30.0, description="A view whose page stopped sending keep-alives this long "
                                       "ago has ended (closed at the device, recorded at its last keep-alive)",
                                       ge=3, le=600)

    @field_validator("turn_urls")
    @classmethod
    def _turn_urls(cls, value: list[str]) -> list[str]:
        import re
        for url in value:
            if not re.fullmatch(r"turns?:[A-Za-z0-9.:\[\]-]{1,100}(\?transport=(udp|tcp))?", url):
                raise ValueError(f"{url!r} is not a turn: or turns: URL (turn:HOST:PORT?transport=udp)")
        return value


class MediaSection(BaseModel):
    model_config = _STRICT
    path: str = Field("media", description="Folder of the clips devices upload, relative to this config file")
    max_clip_mb: float = Field(64.0, description="Largest clip the hub takes; a larger one is refused at its "
                                                "first piece", ge=0.1, le=4096)
    quota_mb: int = Field(20480, description="The clips together stay under this; the oldest go first", ge=1)
    retention_days: float = Field(30.0, description="Clips are deleted this many days after they arrived", gt=0,
                                  le=3650)


class MetricsSection(BaseModel):
    model_config = _STRICT
    host: str = Field("127.0.0.1", description="Address Prometheus scrapes /metrics on (loopback by default)",
                      min_length=1)
    port: int | None = Field(None, description="Port of /metrics; none: no metrics listener", ge=1, le=65535)


class HubConfig(BaseModel):
    model_config = _STRICT
    database: DatabaseSection = Field(default_factory=DatabaseSection, description="Hub database")
    broker: BrokerSection | None = Field(None, description="External broker; if absent the hub starts an "
                                                           "embedded one")
    embedded_broker: EmbeddedBrokerSection = Field(default_factory=EmbeddedBrokerSection,
                                                   description="Embedded broker, used when broker is absent")
    web: WebSection = Field(default_factory=WebSection, description="Web UI and REST API")
    ingest: IngestSection = Field(default_factory=IngestSection, description="Event ingest")
    dispatch: DispatchSection = Field(default_factory=DispatchSection, description="Dispatch queue")
    notify: NotifySection = Field(default_factory=NotifySection, description="Delivery of notifications to the "
                                                                            "parties (五方联动)")
    live: LiveSection = Field(default_factory=LiveSection, description="Live video from devices through the TURN "
                                                                      "relay (视频巡查)")
    media: MediaSection = Field(default_factory=MediaSection, description="Event clips uploaded by devices")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Prometheus metrics (names in the "
                                                                              "README)")
    timezone: str = Field("Asia/Shanghai", description="Time zone of the times on pages and CSV files (an IANA "
                                                      "name); the API gives ISO 8601 with the offset",
                          min_length=1, max_length=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    _base_dir: Path = PrivateAttr(default=Path("."))

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self._base_dir / p

    def database_url(self) -> str:
        url = self.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + str(self.resolve(url[len("sqlite:///"):]))
        return url


def parse_config(text: str, filename: str) -> HubConfig:
    cfg = configdoc.load(text, filename, HubConfig)
    cfg._base_dir = Path(filename).resolve().parent
    return cfg


def load_config(path: str | Path) -> HubConfig:
    return parse_config(read_config_text(path), str(path))


def missing_files(cfg: HubConfig, filename: str) -> None:
    """Raise ``ConfigError`` (file:line of each key) for files the config names that must exist
    before the hub starts: the broker password and CA, the webhooks' keys. (The web session key
    and the TURN secret are made at first start.)"""
    files = []
    if cfg.broker is not None:
        files.append((("broker", "password_file"), cfg.resolve(cfg.broker.password_file)))
        if cfg.broker.ca_file:
            files.append((("broker", "ca_file"), cfg.resolve(cfg.broker.ca_file)))
    for i, hook in enumerate(cfg.notify.webhooks):
        files.append((("notify", "webhooks", i, "secret_file"), cfg.resolve(hook.secret_file)))
    check_files(read_config_text(filename), filename, files)
