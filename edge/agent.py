"""The edge agent process: builds the components from the config and supervises them."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from common.lifecycle import Lifecycle, LifecycleError
from protocols.deviceconfig import EdgeConfig

from . import __version__
from .alarms import AlarmBook
from .demo import DemoGenerator
from .camera.faces import ModelError
from .pillar.alarm import Pillar
from .pillar.provision import ProvisioningServer
from .store import Store
from .sync import FpsMeters, SyncEngine

logger = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent cannot go on (for example: the broker refused its login)."""


class _StoreComponent:
    def __init__(self, store: Store):
        self.store = store

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.store.close()

    def alive(self) -> bool:
        return True


class Agent:
    def __init__(self, cfg: EdgeConfig, config_path: Path | None = None):
        self.cfg = cfg
        self.restart_requested = False
        self.meters = FpsMeters()
        self.store = Store(cfg.resolve(cfg.store.path), cfg.device.id, listeners=[])
        self.alarms = AlarmBook(self.store, window_s=cfg.web.alarm_window_s if cfg.web else 1800.0)
        self.pillar: Pillar | None = None
        if cfg.pillar is not None:
            self.pillar = Pillar(cfg.pillar, self.store, self.alarms, port=str(cfg.resolve(cfg.pillar.port)))
        self.sync = SyncEngine(cfg, self.store, self.meters, software=f"xueliang-edge {__version__}",
                               on_acked=self.alarms.received, on_sent=self.alarms.sent, on_command=self._on_command)
        self.store.listeners.append(self.sync.notify)
        components: list = [("store", _StoreComponent(self.store)), ("sync", self.sync)]
        self.uploads = None
        if cfg.sync.hub_url:
            from .clipupload import ClipUploader
            self.uploads = ClipUploader(cfg, self.store, cfg.resolve(cfg.media.path))
            components.append(("clip-upload", self.uploads))
        if self.pillar is not None:
            components.append(("pillar", self.pillar))
        self.vision = None
        self.live = None  # live video for the LAN page and the hub's viewers
        if cfg.cameras:
            from .camera.vision import Vision, load_detector
            try:
                detector = load_detector(cfg)
            except ModelError as exc:
                raise AgentError(str(exc)) from None
            self.vision = Vision(cfg, self.store, self.meters, detector)
            components.append(("vision", self.vision))
            from .web.live import make_live_server
            self.live = make_live_server(cfg, self.vision)
            self.sync.on_live = self.live.hub_request
            components.append(("live", self.live))
            if self.pillar is not None:
                self.pillar.on_alarm = self._pre_alarm_clip
        self.generator: DemoGenerator | None = None
        if cfg.demo.enabled:
            self.generator = DemoGenerator(cfg.demo, self.store, self.meters)
            components.append(("demo", self.generator))
        self.web = None
        if cfg.web is not None:
            from .web import EventFeed, LanPage, WebContext
            self.web = LanPage(WebContext(cfg, cfg.web, self.store, EventFeed(), vision=self.vision, live=self.live,
                                          pillar=self.pillar, sync=self.sync, meters=self.meters, alarms=self.alarms))
            components.append(("web", self.web))
        if cfg.provisioning is not None:
            if config_path is None:
                raise AgentError("provisioning needs the path of the config file")
            self.provisioning = ProvisioningServer(str(cfg.resolve(cfg.provisioning.port)), cfg.provisioning.baudrate,
                                                   config_path, self._restart)
            components.append(("provisioning", self.provisioning))
        if cfg.metrics.port:
            from common.metrics import MetricsServer

            from .metrics import collector
            components.append(("metrics", MetricsServer(collector(self), cfg.metrics.host, cfg.metrics.port)))
        self.lifecycle = Lifecycle(components)

    def _pre_alarm_clip(self, alarm_id: str) -> None:
        """An alarm's clip (what the pillar's camera saw before and after the press), uploaded to
        the hub without being asked. Started off the serial link's thread: a press is acked to the
        microcontroller without waiting for a camera's pipeline."""
        def start() -> None:
            rel = self.vision.record_alarm(alarm_id) if self.vision is not None else None
            if rel is not None and self.uploads is not None:
                self.uploads.queue(alarm_id)
            logger.info("alarm %s: pre-alarm clip %s", alarm_id, rel or "not recorded (no camera picture)")
        threading.Thread(target=start, name="pre-alarm-clip", daemon=True).start()

    def _on_command(self, cmd) -> object:
        """Hub commands: clip uploads to the uploader, the rest are about alarms."""
        if cmd.command == "upload_clip":
            if self.uploads is None:
                logger.warning("the hub asked for the clip of %s, but sync.hub_url is not set", cmd.event_id)
                return False
            return self.uploads.request(cmd)
        return self.alarms.apply(cmd)

    def _restart(self) -> None:
        """A new config was flashed: stop, and let the caller start again with it."""
        self.restart_requested = True
        self.lifecycle.stopping.set()

    def run(self) -> None:
        """Run until SIGTERM/SIGINT; raise ``AgentError`` on a fatal condition."""
        logger.info("device=%s edge agent starting (store %s)", self.cfg.device.id, self.store.path)
        try:
            self.lifecycle.run(fatal=lambda: self.sync.fatal)
        except LifecycleError as exc:
            raise AgentError(str(exc)) from None
