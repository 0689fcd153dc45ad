"""Users, passwords, API tokens and device MQTT secrets. Plain functions over the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from .schema import api_tokens, devices, users

ROLES = ("admin", "operator", "grid_worker", "viewer")
MIN_PASSWORD_LENGTH = 10


class AuthError(Exception):
    """A user, token or credential request cannot be honoured."""


def write_private(path: "str | os.PathLike[str]", text: str) -> None:
    """Write a secret to ``path`` readable by its owner only (mode 0600, made so, never chmod-ed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_user(engine: sa.Engine, username: str, password: str, role: str, scope_code: str | None = None) -> int:
    """``scope_code``: the area or grid whose subtree the user sees (None: everything; admins only)."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if scope_code is None and role != "admin":
        raise AuthError("only admins may be unscoped: give the area or grid code the user works in")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            raise AuthError(f"user {username!r} exists already")
        if scope_code is not None:
            from .access import AccessError, scope_prefix
            try:
                scope_prefix(conn, scope_code)
            except AccessError as exc:
                raise AuthError(str(exc)) from None
        result = conn.execute(users.insert().values(
            username=username, password_hash=generate_password_hash(password), role=role, created_at=time.time(),
            scope_code=scope_code))
        return int(result.inserted_primary_key[0])


_DUMMY_HASH = generate_password_hash("not anyone's password", method="scrypt")


def check_login(engine: sa.Engine, username: str, password: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).mappings().first()
    # a user that does not exist costs the same hash check, so timing does not tell
    if not check_password_hash(row["password_hash"] if row else _DUMMY_HASH, password) or row is None:
        return None
    return {"id": row["id"], "username": row["username"], "role": row["role"], "scope_code": row["scope_code"]}


def create_token(engine: sa.Engine, username: str, name: str) -> str:
    """Make an API token for ``username``; only its hash is stored, so it is shown once."""
    token = "xlt_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar()
        if user_id is None:
            raise AuthError(f"no user {username!r}; create it with `xl-hub user add`")
        conn.execute(api_tokens.insert().values(user_id=user_id, name=name, token_hash=_sha256(token),
                                                created_at=time.time()))
    return token


TOKEN_USE_RESOLUTION_S = 60.0  # last_used_at is kept to the minute: a request does not write each time


def check_token(engine: sa.Engine, token: str) -> dict | None:
    now = time.time()
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(api_tokens.c.id, api_tokens.c.last_used_at, users.c.id.label("user_id"), users.c.username,
                      users.c.role, users.c.scope_code)
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == _sha256(token))).mappings().first()
        if row is None:
            return None
        # a write waits for the database's one writer (SQLite): only when the mark is stale
        if row["last_used_at"] is None or now - row["last_used_at"] >= TOKEN_USE_RESOLUTION_S:
            conn.execute(api_tokens.update().where(api_tokens.c.id == row["id"]).values(last_used_at=now))
    return {"id": row["user_id"], "username": row["username"], "role": row["role"], "scope_code": row["scope_code"]}


def mosquitto_hash(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """Mosquitto's password-file hash (``$7$``: PBKDF2-HMAC-SHA512), as mosquitto_passwd makes it."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def new_device_secret(engine: sa.Engine, device_id: str) -> str:
    """Give a registered device a new random MQTT password; returns it. Stored only hashed: a
    SHA-256 for the embedded broker and a Mosquitto hash for `xl-hub broker-config`."""
    secret = secrets.token_urlsafe(24)
    with engine.begin() as conn:
        n = conn.execute(devices.update().where(devices.c.id == device_id)
                         .values(mqtt_secret_hash=_sha256(secret),
                                 mqtt_broker_hash=mosquitto_hash(secret))).rowcount
    if n != 1:
        raise AuthError(f"no device {device_id}; register it with `xl-hub device add`")
    return secret


def secret_digest(secret: str) -> str:
    """What is stored of a device secret (compare with ``device_secret_hashes``)."""
    return _sha256(secret)


def device_secret_hashes(engine: sa.Engine, device_ids) -> dict[str, str]:
    """Stored secret digests of those of ``device_ids`` that have one (removed devices have none)."""
    ids = list(device_ids)
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows = conn.execute(sa.select(devices.c.id, devices.c.mqtt_secret_hash)
                                .where(devices.c.id.in_(ids[i:i + 500]))
                                .where(devices.c.mqtt_secret_hash.is_not(None)))
            out.update({r.id: r.mqtt_secret_hash for r in rows})
    return out


def remove_device_secret(engine: sa.Engine, device_id: str) -> None:
    """Take a device off the network: its MQTT password stops working (history is kept)."""
    with engine.begin() as conn:
        n = conn.execute(devices.update().where(devices.c.id == device_id)
                         .values(mqtt_secret_hash=None, mqtt_broker_hash=None, registered=False)).rowcount
    if n != 1:
        raise AuthError(f"no device {device_id}")


def check_device_secret(engine: sa.Engine, device_id: str, secret: str) -> bool:
    """Device secrets are 192-bit random strings, so a plain SHA-256 is enough to store them."""
    with engine.connect() as conn:
        stored = conn.execute(sa.select(devices.c.mqtt_secret_hash).where(devices.c.id == device_id)).scalar()
    return stored is not None and hmac.compare_digest(stored, _sha256(secret))
