"""The hub process: database, broker (embedded or external), ingest and web, in one lifecycle."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from a2wsgi import WSGIMiddleware

from common.lifecycle import Lifecycle, LifecycleError, Periodic
from common.metrics import MetricsServer
from common.webserver import AsgiServer

from . import auth, dispatch, metrics, turn
from .broker import Credentials, EmbeddedBroker
from .commands import CommandSender
from .notify import Notifier, webhooks_from_config
from .config import HubConfig
from .db import CHECKPOINT_EVERY_S, WRITE_GATE, Checkpointer, make_engine, migrate
from .ingest import Ingest
from .clips import SWEEP_EVERY_S, ClipStore
from .leases import NODE, Lease, only_with
from .live import LiveSessions
from .web import create_app
from .web.streams import Fanout, stream_app

logger = logging.getLogger(__name__)

HUB_MQTT_USER = "xl-hub"


class HubError(Exception):
    """The hub cannot go on."""


def read_or_make_secret(path: Path) -> str:
    """The session signing key: read it, or make a random one (mode 0600) on first start."""
    if path.exists():
        key = path.read_text().strip()
        if len(key) < 32:
            raise HubError(f"{path}: the secret key must be at least 32 characters")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    logger.info("made a new web secret key in %s", path)
    return key


def escalation(engine, maintenance_after_s: float) -> Callable[[], None]:
    """One pass: move overdue tickets up a level, open maintenance tickets for silent devices."""
    def run() -> None:
        dispatch.escalate_overdue(engine)
        dispatch.open_offline_tickets(engine, silent_after_s=maintenance_after_s)
    return run


#: what each role of ``xl-hub run --role`` runs; several nodes of one hub share the database and
#: an external broker (shared subscriptions); the jobs hold leases (hub.leases)
ROLES = {
    "all": {"checkpoints", "broker", "ingest-urgent", "ingest", "commands", "notifier", "live-sessions", "clips",
            "escalator", "page-streams", "web", "metrics"},
    "ingest": {"checkpoints", "ingest-urgent", "ingest", "commands", "metrics"},
    "web": {"checkpoints", "ingest-urgent", "commands", "live-sessions", "page-streams", "web", "metrics"},
    "escalator": {"checkpoints", "notifier", "clips", "escalator", "live-sessions", "metrics"},
}


class _Releaser:
    """Hands this node's leases over when it stops cleanly (another node need not wait)."""

    def __init__(self, held: list):
        self.held = held

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for lease in self.held:
            lease.release()

    def alive(self) -> bool:
        return True


class Hub:
    def __init__(self, cfg: HubConfig, role: str = "all"):
        if role not in ROLES:
            raise HubError(f"role must be one of {', '.join(ROLES)}")
        if role != "all" and cfg.broker is None:
            raise HubError(f"--role {role}: the nodes of one hub share an external broker (a broker section), "
                           "not the embedded one")
        self.cfg = cfg
        self.engine = make_engine(cfg.database_url(), background_checkpoints=True)
        migrate(self.engine)
        components: list = []
        if self.engine.dialect.name == "sqlite":
            checkpoint = Checkpointer(self.engine)
            components.append(("checkpoints", Periodic("sqlite-checkpoint", CHECKPOINT_EVERY_S, checkpoint,
                                                       last=checkpoint.close)))
        self.broker: EmbeddedBroker | None = None
        if cfg.broker is None:
            secret = secrets.token_urlsafe(32)
            creds = Credentials(HUB_MQTT_USER, secret,
                                device_hashes=lambda ids: auth.device_secret_hashes(self.engine, ids),
                                digest=auth.secret_digest)
            eb = cfg.embedded_broker
            self.broker = EmbeddedBroker(eb.host, eb.port, creds)
            components.append(("broker", self.broker))
            conn = dict(host=eb.host, port=eb.port, username=HUB_MQTT_USER, password=secret)
        else:
            b = cfg.broker
            try:
                password = cfg.resolve(b.password_file).read_text().strip()
            except OSError as exc:
                raise HubError(f"broker.password_file {cfg.resolve(b.password_file)}: {exc.strerror}") from None
            conn = dict(host=b.host, port=b.port, username=b.username, password=password, client_id=b.client_id,
                        share_group=b.share_group, tls=b.tls,
                        ca_file=str(cfg.resolve(b.ca_file)) if b.ca_file else None)
        # two broker sessions: alarms never queue behind the main session's backlog
        self.urgent = Ingest(self.engine, batch_max=cfg.ingest.batch_max, lane="urgent", **conn)
        self.ingest = Ingest(self.engine, batch_max=cfg.ingest.batch_max, rules=cfg.dispatch.rules,
                             urgent_lane_ready=lambda: self.urgent.connected, **conn)
        self.urgent.on_connected = self.ingest.publish_status
        self.ingest.yield_to = lambda: self.urgent.busy() or WRITE_GATE.busy()
        WRITE_GATE.serialize = self.engine.dialect.name == "sqlite"
        components.append(("ingest-urgent", self.urgent))
        components.append(("ingest", self.ingest))
        # commands go out on the urgent lane's connection: the main one is busy with a backlog's acks
        lease_s = cfg.dispatch.lease_s
        self.leases: list[Lease] = []

        def lease(name: str, ttl_s: float) -> Lease:
            self.leases.append(Lease(self.engine, name, ttl_s))
            return self.leases[-1]
        self.commands = CommandSender(self.engine, self.urgent.publish_command, connected=lambda: self.urgent.connected,
                                      may_run=lease("commands", lease_s).held)
        self.ingest.on_device_online = self.commands.wake
        components.append(("commands", self.commands))
        try:
            hooks = webhooks_from_config(cfg)
        except (OSError, ValueError) as exc:
            raise HubError(f"notify.webhooks: {exc}") from None
        n = cfg.notify
        self.notifier = Notifier(self.engine, hooks, retry_min_s=n.retry_min_s, retry_max_s=n.retry_max_s,
                                 give_up_after_s=n.give_up_after_s, may_run=lease("notify", lease_s).held)
        components.append(("notifier", self.notifier))
        try:
            turn_secret = turn.read_or_make_secret(cfg.resolve(cfg.live.turn_secret_file)) if cfg.live.turn_urls \
                else None
        except (OSError, ValueError) as exc:
            raise HubError(f"live.turn_secret_file: {exc}") from None
        self.live = LiveSessions(self.engine, cfg.live, turn_secret, self.urgent.publish_live)
        self.urgent.on_live_answer = self.live.on_answer
        components.append(("live-sessions", Periodic("live-sessions", self.live.sweep_every_s, only_with(
            lease("live-sweep", max(lease_s, 2 * self.live.sweep_every_s)), self.live.sweep))))
        m = cfg.media
        self.clips = ClipStore(self.engine, cfg.resolve(m.path), max_clip_bytes=int(m.max_clip_mb * (1 << 20)),
                               quota_bytes=m.quota_mb << 20, retention_days=m.retention_days)
        components.append(("clips", Periodic("clips", SWEEP_EVERY_S, only_with(
            lease("clip-sweep", max(lease_s, 2 * SWEEP_EVERY_S)), self.clips.sweep), first_now=True)))
        every = cfg.dispatch.escalate_every_s
        components.append(("escalator", Periodic("escalator", every, only_with(
            lease("escalator", max(lease_s, 2 * every)), escalation(self.engine, cfg.dispatch.offline_ticket_after_s)))))
        self.web = None
        if role in ("all", "web"):
            self._web(cfg, components)
        if cfg.metrics.port:
            self.metrics = MetricsServer(metrics.collector(self), cfg.metrics.host, cfg.metrics.port)
            components.append(("metrics", self.metrics))
        components = [(name, c) for name, c in components if name in ROLES[role]]
        components.insert(0, ("leases", _Releaser(self.leases)))  # stops last: jobs end before the handover
        self.role = role
        self.lifecycle = Lifecycle(components)

    def _web(self, cfg: HubConfig, components: list) -> None:
        app = create_app(self.engine, secret_key=read_or_make_secret(cfg.resolve(cfg.web.secret_key_file)),
                         offline_after_s=cfg.ingest.offline_after_s, health=self.health,
                         commands_due=self.commands.wake, live=self.live, clips=self.clips, timezone=cfg.timezone)
        self.streams = Fanout(app, self.engine, offline_after_s=cfg.ingest.offline_after_s)
        components.append(("page-streams", self.streams))
        asgi = stream_app(app, WSGIMiddleware(app, workers=cfg.web.threads), self.streams)
        self.web = AsgiServer(asgi, cfg.web.host, cfg.web.port, before_stop=self.streams.end_streams)
        components.append(("web", self.web))

    def health(self) -> dict:
        return {"role": self.role, "node": NODE, "leases": sorted(l.name for l in self.leases if l.held()),
                "broker_connected": self.ingest.connected or self.role in ("web", "escalator"),
                "ingest": dict(self.ingest.counters),
                "urgent_lane": {"connected": self.urgent.connected, **self.urgent.counters},
                "commands": dict(self.commands.counters), "notify": dict(self.notifier.counters),
                "live": dict(self.live.counters), "page_streams": dict(self.streams.counters)}

    def run(self) -> None:
        logger.info("hub starting (role %s, node %s)%s", self.role, NODE,
                    f": web http://{self.cfg.web.host}:{self.web.port}/" if self.web else "")
        try:
            self.lifecycle.run(fatal=lambda: self.ingest.fatal)
        except LifecycleError as exc:
            raise HubError(str(exc)) from None
        finally:
            self.engine.dispose()
