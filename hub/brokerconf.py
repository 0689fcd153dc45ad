"""Mosquitto files for production: a password file with every registered device and the hub,
and an ACL in which each device may use only its own topics (the rules the embedded broker
applies, see protocols/README.md)."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlalchemy as sa

from protocols import topics

from .auth import mosquitto_hash, write_private
from .schema import devices

ACL_DEVICE_PATTERNS = ([("write", ch) for ch in topics.DEVICE_PUBLISHES] +
                       [("read", ch) for ch in topics.DEVICE_RECEIVES])


def acl_text(hub_user: str) -> str:
    # %u is the MQTT user name, which for a device is its id
    lines = ["# written by xl-hub broker-config: each device may use only its own topics",
             f"user {hub_user}", f"topic readwrite {topics.PREFIX}/#", ""]
    lines += [f"pattern {access} {topics.PREFIX}/dev/%u/{channel}" for access, channel in ACL_DEVICE_PATTERNS]
    lines.append(f"pattern read {topics.hub_status()}")
    return "\n".join(lines) + "\n"


def mosquitto_conf(port: int, passwd: Path, acl: Path, *, tls: bool) -> str:
    lines = [
        "# written by xl-hub broker-config",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "# the default (1000) silently drops QoS 1 messages in a burst",
        "max_queued_messages 100000",
        "# small acks must not wait for delayed TCP acks",
        "set_tcp_nodelay true",
        "# the hub's sessions (its subscriptions and what is queued for it) survive a broker restart",
        "persistence true",
        "persistence_location /var/lib/mosquitto/",
        "autosave_interval 30",
        f"listener {port}",
    ]
    if tls:
        lines += ["# TLS: put the broker's certificate and key here; devices get ca_file",
                  "certfile /etc/mosquitto/certs/server.crt", "keyfile /etc/mosquitto/certs/server.key",
                  "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


def write_broker_files(engine: sa.Engine, out: Path, *, hub_user: str, hub_password_file: Path, port: int,
                       tls: bool) -> tuple[dict[str, Path], list[str]]:
    """Write passwd, acl and mosquitto.conf into ``out``; make the hub's password if it has none.
    Returns the paths and the registered devices left out because they have no broker hash."""
    out.mkdir(parents=True, exist_ok=True)
    if not hub_password_file.exists():
        write_private(hub_password_file, secrets.token_urlsafe(24) + "\n")
    hub_password = hub_password_file.read_text().strip()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(devices.c.id, devices.c.mqtt_broker_hash)
                            .where(devices.c.registered.is_(True)).order_by(devices.c.id)).all()
    missing = [r.id for r in rows if not r.mqtt_broker_hash]
    entries = [f"{hub_user}:{mosquitto_hash(hub_password)}"] + [f"{r.id}:{r.mqtt_broker_hash}" for r in rows
                                                                 if r.mqtt_broker_hash]
    paths = {"passwd": out / "passwd", "acl": out / "acl", "conf": out / "mosquitto.conf"}
    write_private(paths["passwd"], "\n".join(entries) + "\n")
    paths["acl"].write_text(acl_text(hub_user))
    paths["conf"].write_text(mosquitto_conf(port, paths["passwd"].resolve(), paths["acl"].resolve(), tls=tls))
    return paths, missing
