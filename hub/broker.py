"""Embedded MQTT broker (amqtt) for a hub on one machine, on its own asyncio thread.

Loopback by default. Every client must log in: the hub's own ingest client with a random
secret made at start, devices with the MQTT secret made by ``xl-hub device add``. A device
may publish only its own event/status/heartbeat topics and subscribe only to its own ack
topic and the hub's status. Production uses Mosquitto with the same rules.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from common.ports import bind
from protocols import ProtocolError, topics
from protocols.ids import check_device_id

logger = logging.getLogger(__name__)


@dataclass
class Credentials:
    """What the broker checks logins against (shared with the plugins through their config).

    ``device_hashes`` returns the stored secret digests of the given device ids, read fresh on
    every login and every ``revalidate_s`` for connected devices: a changed password or a removed
    device takes effect at once and its open session is closed."""

    hub_username: str
    hub_secret: str
    device_hashes: Callable[[Collection[str]], dict[str, str]]
    digest: Callable[[str], str]
    #: client id -> (device id, digest it logged in with), for the sessions that logged in
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)

    def check(self, client_id: str, username: str | None, password: str | None) -> bool:
        if not username or not password:
            return False
        if username == self.hub_username:
            return hmac.compare_digest(password, self.hub_secret)
        try:
            check_device_id(username)
        except ProtocolError:
            return False
        digest = self.digest(password)
        stored = self.device_hashes([username]).get(username)
        if stored is None or not hmac.compare_digest(stored, digest):
            return False
        self.logins[client_id] = (username, digest)
        return True

    def stale(self, client_ids: Collection[str]) -> list[str]:
        """Those of ``client_ids`` whose device password changed or whose device was removed."""
        sessions = {c: self.logins[c] for c in client_ids if c in self.logins}
        stored = self.device_hashes({dev for dev, _ in sessions.values()})
        return [c for c, (dev, digest) in sessions.items() if stored.get(dev) != digest]


def device_may(device_id: str, topic: str, action: Action) -> bool:
    """The ACL of one device, the same that `xl-hub broker-config` writes for Mosquitto."""
    if action in (Action.SUBSCRIBE, Action.RECEIVE):
        if topic == topics.hub_status():
            return True
        try:
            owner, channel = topics.parse_device_topic(topic)
        except ProtocolError:
            return False
        return owner == device_id and channel in topics.DEVICE_RECEIVES
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
        ok = await loop.run_in_executor(None, creds.check, session.client_id, session.username, session.password)
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


class _DropStartupTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Broker startup failed"


class _Subscriptions(dict):
    """amqtt walks its subscription table across awaits while broadcasting; a subscription made
    meanwhile raised "dictionary changed size during iteration" and lost that message for every
    subscriber. Iterating a snapshot keeps the broadcast whole."""

    def items(self):  # type: ignore[override]
        return list(super().items())

    def __iter__(self):
        return iter(list(super().keys()))


class _Broker(Broker):
    """amqtt's broker with our rules for retained messages (a client gets a retained message only
    for a subscription it holds and only if our ACL lets it receive that topic: amqtt sent them for
    refused subscriptions, and on reconnect for every client's subscriptions), and without losing
    what a client published just before it left."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._subscriptions = _Subscriptions()

    async def _publish_retained_messages_for_subscription(self, subscription, session) -> None:
        topic_filter, qos = subscription
        held = self._subscriptions.get(topic_filter, [])
        if not any(s.client_id == session.client_id for s, _ in held):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic, Action.RECEIVE):
                continue
            tasks.append(asyncio.ensure_future(
                handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)))
        if tasks:
            await asyncio.wait(tasks)

    async def _handle_disconnect(self, client_session, handler, disconnect_waiter) -> None:
        # amqtt acknowledges a QoS 1 PUBLISH when it reads it and hands it on later; a client that
        # left in between lost what it had been told was received. Hand on the rest first.
        pending = client_session.delivered_message_queue
        while not pending.empty():
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(pending.get_nowait())
            await self._handle_message_delivery(client_session, handler, delivered)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    def connected_sessions(self) -> dict[str, Any]:
        """client id -> handler of the clients connected now."""
        return {cid: handler for cid, (session, handler) in list(self._sessions.items())
                if handler is not None and session.transitions.state == "connected"}


class EmbeddedBroker:
    def __init__(self, host: str, port: int, credentials: Credentials, revalidate_s: float = 1.0):
        self.host, self.port = host, port
        self.credentials = credentials
        self.revalidate_s = revalidate_s
        self.closed_stale = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: _Broker | None = None
        self._watch: asyncio.Task | None = None

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        quiet = _DropStartupTraceback()
        logging.getLogger("amqtt.broker").addFilter(quiet)  # the failure is reported once, by us
        try:
            bind(self.host, self.port, "embedded_broker.port", lambda: fut.result(timeout=30))
        finally:
            logging.getLogger("amqtt.broker").removeFilter(quiet)
        logger.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "hub.broker.HubAuthPlugin": {"credentials": self.credentials},
                "hub.broker.HubTopicPlugin": {"credentials": self.credentials},
            },
        }
        self._broker = _Broker(config, loop=self._loop)
        await self._broker.start()
        self._watch = asyncio.ensure_future(self._revalidate())

    async def _revalidate(self) -> None:
        """Close the session of a device whose password changed or which was removed."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.revalidate_s)
            try:
                sessions = self._broker.connected_sessions()
                stale = await loop.run_in_executor(None, self.credentials.stale, list(sessions))
                for client_id in stale:
                    device = self.credentials.logins.pop(client_id, ("?",))[0]
                    logger.warning("device=%s credential changed or device removed: closing its session", device)
                    self.closed_stale += 1
                    await sessions[client_id].handle_connection_closed()
            except Exception:
                logger.exception("checking connected devices' credentials failed; trying again")

    def stop(self) -> None:
        if self._watch is not None:
            self._loop.call_soon_threadsafe(self._watch.cancel)
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
