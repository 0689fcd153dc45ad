"""The one check of a redirect target taken from a request (``?next=``), for both web apps."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")  # browsers drop tabs/newlines and read "\" as "/"


def safe_next(target: object, default: str = "/") -> str:
    """``target`` if it is a path on this site (``/…``, no scheme, no host, no control
    characters, spaces or backslashes), else ``default``."""
    if not isinstance(target, str) or not target or len(target) > 2000 or _CONTROL.search(target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return target
