"""The web server of either daemon: waitress in its own thread, stopped in bounded time.

waitress's own ``close()`` shuts only the listening socket; a page that holds a stream open
(server-sent events, MJPEG) kept its loop, and so the daemon, running. ``stop()`` closes every
connection inside waitress's loop thread, then ends the worker threads."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from .ports import bind

logger = logging.getLogger(__name__)


class WebServer:
    def __init__(self, app, host: str, port: int, *, threads: int, ident: str, key: str = "web.port",
                 channel_timeout: int = 120, name: str = "web"):
        self._server = bind(host, port, key, lambda: create_server(
            app, host=host, port=port, threads=threads, ident=ident, channel_timeout=channel_timeout))
        self.stopping = threading.Event()  # long-lived responses end when it is set
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        server = self._server

        def close_everything() -> None:  # runs in the loop thread: no race with it
            for channel in list(server._map.values()):
                if channel is not server.trigger and channel is not server:
                    channel.close()
            server.close()  # the listening socket and the trigger; the loop ends with an empty map

        if self._thread.is_alive():
            server.trigger.pull_trigger(close_everything)
            self._thread.join(timeout)
        else:
            server.close()
        if self._thread.is_alive():
            logger.warning("the web server's loop did not end in %.0f s", timeout)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()
