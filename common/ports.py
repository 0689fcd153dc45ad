"""Binding a listening port, with one clear error when it cannot be had.

A daemon that cannot listen where its config says must say so in one line (address, reason, the
config key to change) and exit with status 2, never print a traceback."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: exit status of a daemon whose configured address cannot be used
EXIT_ADDRESS = 2


class AddressUnavailable(Exception):
    """A configured address cannot be listened on."""

    def __init__(self, host: str, port: int | str, key: str, reason: str):
        self.host, self.port, self.key = host, port, key
        super().__init__(f"cannot listen on {host}:{port} ({reason}): change `{key}` in the config "
                         f"or stop what holds that address")


def _reason(exc: BaseException) -> str | None:
    """The reason if ``exc`` (or what caused it) is a failure to bind, else None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            return {errno.EADDRINUSE: "address already in use", errno.EACCES: "permission denied",
                    errno.EADDRNOTAVAIL: "no such address on this machine"}[exc.errno]
        if "address already in use" in str(exc).lower():
            return "address already in use"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def bind(host: str, port: int | str, key: str, listen: Callable[[], T]) -> T:
    """Run ``listen()`` (which binds ``host:port``); turn a bind failure into ``AddressUnavailable``."""
    try:
        return listen()
    except Exception as exc:
        reason = _reason(exc)
        if reason is None:
            raise
        raise AddressUnavailable(host, port, key, reason) from None
