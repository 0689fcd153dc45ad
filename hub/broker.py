"""Embedded MQTT broker (amqtt) for a hub on one machine, on its own asyncio thread.

Loopback by default. Every client must log in: the hub's own ingest client with a random
secret made at start, devices with the MQTT secret made by ``xl-hub device add``. A device
may publish only its own event/status/heartbeat topics and subscribe only to its own ack
topic and the hub's status. Production uses Mosquitto with the same rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from protocols import ProtocolError, topics
from protocols.ids import check_device_id

logger = logging.getLogger(__name__)


@dataclass
class Credentials:
    """What the broker checks logins against (shared with the plugins through their config)."""

    hub_username: str
    hub_secret: str
    check_device: Callable[[str, str], bool]
    _cache: dict[str, str] = field(default_factory=dict)

    def check(self, username: str | None, password: str | None) -> bool:
        if not username or not password:
            return False
        if username == self.hub_username:
            return hmac.compare_digest(password, self.hub_secret)
        try:
            check_device_id(username)
        except ProtocolError:
            return False
        digest = hashlib.sha256(password.encode()).hexdigest()
        if self._cache.get(username) == digest:
            return True
        ok = self.check_device(username, password)
        if ok:
            self._cache[username] = digest
        return ok


def device_may(device_id: str, topic: str, action: Action) -> bool:
    """The ACL of one device, the same that `xl-hub broker-config` writes for Mosquitto."""
    if action in (Action.SUBSCRIBE, Action.RECEIVE):
        return topic == topics.hub_status() or topic in (topics.ack(device_id), topics.command(device_id))
    if action == Action.PUBLISH:
        try:
            owner, channel = topics.parse_device_topic(topic)
        except ProtocolError:
            return False
        return owner == device_id and channel in topics.DEVICE_PUBLISHES
    return False


class HubAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        credentials: Any = None

    async def authenticate(self, *, session) -> bool:
        creds: Credentials = self.config.credentials
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, creds.check, session.username, session.password)
        if not ok:
            logger.warning("embedded broker refused login of %r from client %r", session.username,
                           session.client_id)
        return ok


class HubTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        credentials: Any = None

    async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool:
        creds: Credentials = self.config.credentials
        if session is None or topic is None:
            return False
        if session.username == creds.hub_username:
            return True
        return device_may(session.username or "", topic, action)


class EmbeddedBroker:
    def __init__(self, host: str, port: int, credentials: Credentials):
        self.host, self.port = host, port
        self.credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Broker | None = None

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=30)
        logger.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "hub.broker.HubAuthPlugin": {"credentials": self.credentials},
                "hub.broker.HubTopicPlugin": {"credentials": self.credentials},
            },
        }
        self._broker = Broker(config, loop=self._loop)
        await self._broker.start()

    def stop(self) -> None:
        if self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(timeout=10)
            except Exception:
                logger.exception("embedded broker did not shut down cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread.is_alive()
