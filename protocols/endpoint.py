"""Broker addresses as configs write them: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

#: CONNACK answers (paho's names) that retrying cannot fix: a client stops and says why
FATAL_CONNECT_REASONS = frozenset({"Bad user name or password", "Not authorized", "Client identifier not valid",
                                   "Banned", "Bad authentication method"})


def check_broker_url(value: str) -> str:
    """Return ``value`` if it is a usable broker URL, else raise ``ValueError`` saying why."""
    parts = urlsplit(value)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("must look like mqtt://host:port or mqtts://host:port")
    try:
        parts.port
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return value


class BrokerEndpoint:
    """Mixin for config sections with a ``url`` field: host, port and TLS from it."""

    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"
