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


class AsgiServer:
    """The hub's web server: uvicorn in its own thread with its own event loop. Requests to the
    WSGI app run in the bridge's pool of threads (a2wsgi, made by the caller); long-lived page streams are asyncio tasks of
    the ASGI app and hold no thread. ``stop()`` ends open streams and the loop in bounded time."""

    def __init__(self, asgi_app, host: str, port: int, *, key: str = "web.port", name: str = "web",
                 before_stop=None):
        import socket

        import uvicorn

        def listen() -> socket.socket:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for a TCP
            # listener; without it a response's headers and body wait 40 ms for a delayed ACK
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                raise
            sock.listen(2048)
            sock.set_inheritable(True)
            return sock
        self._sock = bind(host, port, key, listen)
        config = uvicorn.Config(asgi_app, log_level="warning", access_log=False, lifespan="off", http="httptools",
                                loop="asyncio", timeout_graceful_shutdown=1, timeout_keep_alive=30,
                                server_header=False)
        self._server = uvicorn.Server(config)
        self._before_stop = before_stop  # ends long-lived responses (page streams) before the loop stops
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:
            logger.exception("the web server stopped")

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        if self._before_stop is not None:
            self._before_stop()
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(1.0)
            if self._thread.is_alive():
                logger.warning("the web server did not stop in %.0f s", timeout)
        try:
            self._sock.close()
        except OSError:
            pass

    def alive(self) -> bool:
        return self._thread.is_alive()
