"""The MQTT session rules both daemons follow (paho-mqtt).

- Every client logs in with a user name; TLS when the broker URL says ``mqtts://``.
- A last will is set before connecting; the network loop reconnects with backoff.
- paho's own queue is off (``max_queued_messages 0``): durability is the outbox's job, not the
  client's memory.
- On CONNACK: a refused login (bad user name or password, not authorized, …) is fatal and says
  why; anything else is retried; Nagle is switched off (small acks would wait ~40 ms a hop).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols.endpoint import FATAL_CONNECT_REASONS


def make_client(client_id: str, *, username: str, password: str, clean_session: bool,
                will: tuple[str, bytes] | None, tls: bool = False, ca_file: str | None = None,
                reconnect: tuple[float, float] = (0.5, 10.0), max_inflight: int = 20) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)
    if tls:
        client.tls_set(ca_certs=ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(*reconnect)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    return client


def on_connack(client: mqtt.Client, reason_code, *, fatal: Callable[[str], None],
               transient: Callable[[str], None]) -> bool:
    """Sort a CONNACK: True if connected (and the socket tuned); otherwise ``fatal(reason)`` for a
    refused login (the client is disconnected: retrying cannot help) or ``transient(reason)``."""
    if reason_code.is_failure:
        reason = str(reason_code)
        if reason in FATAL_CONNECT_REASONS:
            fatal(reason)
            client.disconnect()
        else:
            transient(reason)
        return False
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True
