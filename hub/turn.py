"""The county's TURN relay (coturn): short-lived credentials per live session and its config file.

Credentials follow the TURN REST API scheme coturn implements with ``use-auth-secret``: the user
name is ``<expiry unix time>:<label>``, the password base64(HMAC-SHA1(secret, user name)). Hub and
coturn share only the secret; a credential handed to a browser or a device stops working at its
expiry, and nothing per session is stored at the relay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path

from protocols.live import IceServer

from .auth import write_private

_LABEL_RE = re.compile(r"[^A-Za-z0-9_.@-]")


def credential(secret: str, label: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """(user name, password) valid for ``ttl_s`` seconds."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{_LABEL_RE.sub('_', label)[:64]}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def ice_servers(urls: list[str], secret: str, label: str, ttl_s: int) -> tuple[IceServer, ...]:
    if not urls:
        return ()
    username, password = credential(secret, label, ttl_s)
    return (IceServer(tuple(urls), username, password),)


def stun_servers(turn_urls: list[str]) -> tuple[IceServer, ...]:
    """The relay's STUN side, for a device: it learns its NAT's address from it."""
    urls = tuple(dict.fromkeys("stun:" + u.split(":", 1)[1].split("?")[0] for u in turn_urls))
    return (IceServer(urls, None, None),) if urls else ()


def read_or_make_secret(path: Path) -> str:
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    value = path.read_text().strip()
    if len(value) < 16:
        raise ValueError(f"{path}: the TURN secret must be at least 16 characters")
    return value


def turnserver_conf(*, secret: str, realm: str, listen_ip: str, external_ip: str | None, port: int,
                    min_port: int, max_port: int, log_file: str, allow_loopback_peers: bool = False) -> str:
    """coturn's turnserver.conf for the county: TURN over UDP and TCP on ``port``, relay ports
    ``min_port``-``max_port``, the hub's shared secret, no STUN-only use and no admin console."""
    lines = [
        "# written by xl-hub turn-config: the county's TURN relay for live video (coturn)",
        f"listening-ip={listen_ip}",
        f"relay-ip={listen_ip}",
        f"listening-port={port}",
        f"min-port={min_port}",
        f"max-port={max_port}",
        "# credentials: TURN REST API scheme, made by the hub per live session",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={realm}",
        "fingerprint",
        "# no TLS listener here: put turns: behind a certificate if the county needs it",
        "no-tls",
        "no-dtls",
        "no-cli",
        "# (coturn refuses peers on its own loopback unless allow-loopback-peers is set)",
        "no-multicast-peers",
        "stale-nonce=600",
        f"log-file={log_file}",
        "simple-log",
    ]
    if external_ip:
        lines.insert(3, f"external-ip={external_ip}")
    if allow_loopback_peers:
        lines += ["# everything on one machine (the demo): peers on loopback are allowed", "allow-loopback-peers"]
    return "\n".join(lines) + "\n"
