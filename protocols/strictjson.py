"""The one strict JSON reader for everything that arrives from the network.

A payload is accepted only if every database we store it in and every JSON writer we serve it
through can take it unchanged:

- UTF-8 only (no UTF-16/32 detection, no byte-order mark, no lone surrogates);
- at most ``max_bytes`` long and ``max_depth`` objects/arrays deep;
- integers within signed 64 bits; no ``NaN``/``Infinity`` and no float that overflows to it;
- no NUL character in any string or key (PostgreSQL text cannot hold it);
- no key given twice in one object.

Anything else raises ``ProtocolError`` with the reason; nothing half-checked is returned.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from . import ProtocolError

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
#: characters no stored string may hold: NUL and UTF-16 surrogates (not encodable as UTF-8)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class _Reject(ValueError):
    pass


def _parse_constant(name: str) -> float:
    raise _Reject(f"{name} is not allowed")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Reject(f"key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return obj


# the C scanner does the parsing; only NaN/Infinity and objects call back into Python
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_parse_constant)


def _check_tree(value: Any, max_depth: int) -> None:
    """Depth, strings (values and keys), integer range and finite numbers, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if _BAD_CHARS.search(item):
                raise ProtocolError(f"string {item[:40]!r} holds a NUL or a lone surrogate")
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise ProtocolError(f"integer {str(item)[:24]} is outside signed 64 bits")
        elif kind is float:
            if not math.isfinite(item):
                raise ProtocolError(f"number {item!r} is not finite")
        elif kind is dict or kind is list:
            if depth > max_depth:
                raise ProtocolError(f"payload is nested deeper than {max_depth} levels")
            if kind is dict:
                for key in item:
                    if _BAD_CHARS.search(key):
                        raise ProtocolError(f"key {key[:40]!r} holds a NUL or a lone surrogate")
                children = item.values()
            else:
                children = item
            stack.extend((child, depth + 1) for child in children)


def loads(payload: bytes | bytearray | memoryview | str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse ``payload`` under the rules above; raise ``ProtocolError``."""
    if isinstance(payload, str):
        try:
            payload = payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("payload holds a lone surrogate") from None
    data = bytes(payload)
    if len(data) > max_bytes:
        raise ProtocolError(f"payload of {len(data)} bytes exceeds {max_bytes}")
    if b"\x00" in data:
        raise ProtocolError("payload is not UTF-8 JSON: it holds NUL bytes (UTF-16/32?)")
    try:
        text = data.decode("utf-8")  # strict: no UTF-16/32 guessing, no invalid sequences
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"payload is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        raise ProtocolError("payload starts with a byte-order mark")
    try:
        value = _DECODER.decode(text)
    except _Reject as exc:
        raise ProtocolError(str(exc)) from None
    except RecursionError:  # the parser's own guard, far above max_depth
        raise ProtocolError(f"payload is nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # includes an integer too long to convert
        raise ProtocolError(f"payload is not UTF-8 JSON: {str(exc)[:120]}") from None
    _check_tree(value, max_depth)
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; refuses NaN/Infinity so that nothing we send breaks a strict reader."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
