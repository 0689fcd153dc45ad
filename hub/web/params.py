"""Request parameters of the hub's API, checked in one place: a bad one is a 400 (or a 404 for
an id that cannot exist) with the JSON error body, never a 500 from deeper down."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from werkzeug.routing import BaseConverter, ValidationError

from protocols import ProtocolError, strictjson

INT32_MAX = 2 ** 31 - 1  # ids are 32-bit integers on PostgreSQL
MAX_BODY_BYTES = 64 * 1024
_BAD_TEXT = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class ApiError(Exception):
    """Becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


class IdConverter(BaseConverter):
    """``<id:name>``: a positive 32-bit integer; anything else does not match (404)."""

    regex = r"[0-9]{1,10}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= INT32_MAX:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


def text(value: Any, name: str, *, max_len: int = 64, pattern: re.Pattern | None = None) -> str:
    """A text value: a string without control characters, NUL or unpaired surrogates, at most
    ``max_len`` characters, matching ``pattern`` in full if given."""
    if not isinstance(value, str):
        raise bad(f"{name} must be text")
    if len(value) > max_len:
        raise bad(f"{name} is longer than {max_len} characters")
    if _BAD_TEXT.search(value):
        raise bad(f"{name} holds a control character")
    if pattern is not None and not pattern.fullmatch(value):
        raise bad(f"{name} is not a valid value")
    return value


def arg_text(name: str, *, max_len: int = 64, pattern: re.Pattern | None = None) -> str | None:
    """A query parameter, or None when it is absent or empty."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    return text(value, name, max_len=max_len, pattern=pattern)


def arg_int(name: str, default: int, lo: int, hi: int) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[0-9]{1,10}", value):
        raise bad(f"{name} must be a whole number {lo}..{hi}")
    number = int(value)
    if not lo <= number <= hi:
        raise bad(f"{name} must be {lo}..{hi}")
    return number


def arg_choice(name: str, choices: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise bad(f"{name} must be one of {', '.join(choices)}")
    return value


def body() -> dict[str, Any]:
    """The request body: strict JSON (see protocols.strictjson), or a multipart form (a phone
    posting a photo); either way a mapping whose text has no control characters."""
    if request.mimetype == "multipart/form-data":
        form = request.form.to_dict()
        for key, value in form.items():
            text(value, key, max_len=4000)
        return form
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = strictjson.loads(raw, max_bytes=MAX_BODY_BYTES, max_depth=8)
    except ProtocolError as exc:
        raise bad(f"the body is not valid JSON: {exc.reason}") from None
    if not isinstance(data, dict):
        raise bad("the body must be a JSON object")
    return data


def field_text(data: dict[str, Any], name: str, *, max_len: int = 2000, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise bad(f"{name} is required")
        return None
    return text(value, name, max_len=max_len)


def field_id(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
        raise bad(f"{name} must be a ticket number")
    return value
