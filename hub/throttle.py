"""Slowing down password and token guessing on the hub, kept in the database so that a restart
does not reset it (the LAN page has the same rule per address).

A login is refused without looking at the password while its account has had ``ACCOUNT``
failures, or its address ``ADDRESS`` failures, within the window; API token guesses from one
address likewise (``TOKEN``)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from .schema import login_failures

#: (failures, window in seconds)
ADDRESS = (5, 300)
ACCOUNT = (10, 900)
TOKEN = (20, 300)
_KEEP_S = 3600


def _key(kind: str, value: str) -> str:
    return f"{kind}:{value[:150]}"


def keys_for_login(username: str, address: str) -> list[tuple[str, tuple[int, int]]]:
    return [(_key("user", username), ACCOUNT), (_key("addr", address), ADDRESS)]


def keys_for_token(address: str) -> list[tuple[str, tuple[int, int]]]:
    return [(_key("token", address), TOKEN)]


def wait_s(engine: sa.Engine, keys: list[tuple[str, tuple[int, int]]], now: float | None = None) -> float:
    """Seconds until another try is allowed (0: now)."""
    now = time.time() if now is None else now
    longest = 0.0
    with engine.connect() as conn:
        for key, (limit, window) in keys:
            times = conn.execute(sa.select(login_failures.c.at).where(login_failures.c.key == key)
                                 .where(login_failures.c.at > now - window)
                                 .order_by(login_failures.c.at.desc()).limit(limit)).scalars().all()
            if len(times) >= limit:
                longest = max(longest, min(times) + window - now)
    return longest


def failed(engine: sa.Engine, keys: list[tuple[str, tuple[int, int]]], now: float | None = None) -> None:
    now = time.time() if now is None else now
    with engine.begin() as conn:
        conn.execute(login_failures.insert(), [{"key": key, "at": now} for key, _ in keys])
        conn.execute(login_failures.delete().where(login_failures.c.at < now - _KEEP_S))
