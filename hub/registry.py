"""Device registry: what the hub knows of each device, and whether it is online."""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from protocols.ids import check_device_id
from protocols.messages import Status

from .sqlutil import insert_ignore
from .schema import device_status_log, devices, meta

logger = logging.getLogger(__name__)

INGEST_STARTED_KEY = "ingest_started_at"


class RegistryError(Exception):
    """A registry change cannot be made."""


def put_device(conn: sa.Connection, device_id: str, values: dict[str, Any], *, replace: bool = True) -> None:
    """Register a device or update its registry entry (the one place that writes what the
    registry decides: kind, name, grid, model, place). With ``replace=False`` an already
    registered device is an error."""
    check_device_id(device_id)
    values = {**values, "registered": True}
    exists = conn.execute(sa.select(devices.c.registered).where(devices.c.id == device_id)).first()
    if exists and exists.registered and not replace:
        raise RegistryError(f"device {device_id} is registered already")
    if exists:
        conn.execute(devices.update().where(devices.c.id == device_id).values(**values))
    else:
        conn.execute(devices.insert().values(id=device_id, created_at=time.time(), **values))


def add_device(engine: sa.Engine, device_id: str, *, kind: str, name: str, grid_code: str | None = None,
               model: str | None = None, latitude: float | None = None, longitude: float | None = None,
               address: str | None = None) -> None:
    with engine.begin() as conn:
        put_device(conn, device_id, dict(kind=kind, name=name, grid_code=grid_code, model=model, latitude=latitude,
                                         longitude=longitude, address=address), replace=False)


def ensure_devices(conn: sa.Connection, device_ids: set[str]) -> None:
    """Create rows for devices first heard of on the broker (not registered through the CLI)."""
    if device_ids:
        now = time.time()
        conn.execute(insert_ignore(devices, conn.dialect.name),
                     [{"id": d, "created_at": now, "kind": "unknown", "registered": False} for d in device_ids])


def touch(conn: sa.Connection, device_id: str, seen_at: float) -> None:
    touch_many(conn, [device_id], seen_at)


def touch_many(conn: sa.Connection, device_ids, seen_at: float) -> None:
    """The devices were heard from at ``seen_at`` (never moves ``last_seen`` back)."""
    ids = list(device_ids)
    if ids:
        conn.execute(devices.update().where(devices.c.id.in_(ids))
                     .where(sa.or_(devices.c.last_seen.is_(None), devices.c.last_seen < seen_at))
                     .values(last_seen=seen_at))


def set_status(conn: sa.Connection, device_id: str, status: Status, *, live: bool) -> None:
    """Record a birth/last-will message (see ``set_statuses``)."""
    set_statuses(conn, [(device_id, status, live)])


def set_statuses(conn: sa.Connection, items: list[tuple[str, Status, bool]]) -> None:
    """Record birth/last-will messages ``(device, status, live)``, in order, with one read of the
    devices and one write per set of changed columns (a broker restart brings every device's
    birth at once). A retained copy (``live=False``) is old news: it sets the state but not
    ``last_seen``, so after a hub restart a device is 'unknown' until it speaks.

    The registry decides a device's kind, grid and place: what the device says of them is kept in
    ``reported`` and a difference is logged (and shown on the devices page), never applied. Model
    and software version are the device's own to report; its location is taken only where the
    registry was given none (then it follows the device's config). A live change of state is
    written to the device's state history."""
    if not items:
        return
    rows = {r.id: r for r in conn.execute(
        sa.select(devices.c.id, devices.c.kind, devices.c.grid_code, devices.c.latitude, devices.c.longitude,
                  devices.c.address, devices.c.reported, devices.c.status)
        .where(devices.c.id.in_({d for d, _, _ in items})))}
    current = {d: r.status for d, r in rows.items()}
    changes: dict[str, dict[str, Any]] = {}
    history = []
    now = time.time()
    for device_id, status, live in items:
        values = _status_values(device_id, status, rows.get(device_id))
        if live:
            values["last_seen"] = now
            if current.get(device_id) != status.state:
                history.append({"device_id": device_id, "status": status.state, "at": status.ts})
        current[device_id] = status.state
        changes.setdefault(device_id, {}).update(values)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for device_id, values in changes.items():
        by_columns.setdefault(tuple(sorted(values)), []).append({"b_id": device_id,
                                                                **{f"b_{k}": v for k, v in values.items()}})
    for columns, params in by_columns.items():
        conn.execute(devices.update().where(devices.c.id == sa.bindparam("b_id"))
                     .values({c: sa.bindparam(f"b_{c}") for c in columns}), params)
    if history:
        conn.execute(device_status_log.insert(), history)


def _status_values(device_id: str, status: Status, row) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status.state, "status_ts": status.ts}
    for key in ("model", "software"):
        if getattr(status, key):
            values[key] = getattr(status, key)
    if status.state == "online":
        reported = {k: v for k, v in (("kind", status.kind), ("grid_code", status.grid_code),
                                      ("location", status.location)) if v is not None}
        values["reported"] = reported
        loc = status.location or {}
        if row is not None and "latitude" in loc and "longitude" in loc and _place_is_the_devices(row):
            # a place the registry was not given comes from the device's installed config (and follows it)
            values.update(latitude=loc["latitude"], longitude=loc["longitude"], address=loc.get("address"))
        if row is not None:
            for key, ours in (("kind", row.kind), ("grid_code", row.grid_code)):
                theirs = reported.get(key)
                if theirs is not None and theirs != ours:
                    logger.warning("device=%s reports %s %r but the registry has %r; the registry's stands",
                                   device_id, key, theirs[:40], ours)
    return values


def _place_is_the_devices(row) -> bool:
    """True if the registry has no place for the device, or the one it has came from the device."""
    if row.latitude is None:
        return True
    before = (row.reported or {}).get("location") or {}
    return (before.get("latitude"), before.get("longitude"), before.get("address")) == \
        (row.latitude, row.longitude, row.address)


def mismatches(row: dict[str, Any]) -> dict[str, Any]:
    """What the device reports differently from the registry: {key: reported value}."""
    reported = row.get("reported") or {}
    return {k: reported[k] for k in ("kind", "grid_code") if reported.get(k) is not None and reported[k] != row.get(k)}


def set_heartbeat(conn: sa.Connection, device_id: str, heartbeat: dict[str, Any]) -> None:
    set_heartbeats(conn, {device_id: heartbeat})


def set_heartbeats(conn: sa.Connection, heartbeats: dict[str, dict[str, Any]]) -> None:
    """The latest heartbeat of each device, in one statement."""
    if heartbeats:
        now = time.time()
        conn.execute(devices.update().where(devices.c.id == sa.bindparam("b_id"))
                     .values(heartbeat=sa.bindparam("b_hb"), last_seen=sa.bindparam("b_seen")),
                     [{"b_id": d, "b_hb": hb, "b_seen": now} for d, hb in heartbeats.items()])


def mark_ingest_started(engine: sa.Engine) -> float:
    now = time.time()
    with engine.begin() as conn:
        conn.execute(meta.delete().where(meta.c.key == INGEST_STARTED_KEY))
        conn.execute(meta.insert().values(key=INGEST_STARTED_KEY, value=repr(now)))
    return now


def liveness(row: dict[str, Any], *, now: float, ingest_started: float | None, offline_after_s: float) -> str:
    """online / offline / unknown, from what the hub has heard since its ingest started."""
    if row.get("status") == "offline":
        return "offline"
    last_seen = row.get("last_seen")
    heard_since_start = last_seen is not None and (ingest_started is None or last_seen >= ingest_started)
    if heard_since_start:
        return "online" if now - last_seen <= offline_after_s else "offline"
    if ingest_started is not None and now - ingest_started < offline_after_s:
        return "unknown"
    return "offline" if last_seen is not None or row.get("status") else "unknown"


def list_devices(engine: sa.Engine, *, offline_after_s: float, prefix: str | None = None,
                 device_id: str | None = None) -> list[dict[str, Any]]:
    """Devices inside the scope ``prefix`` (see hub.access), with their liveness."""
    from .access import device_filter
    now = time.time()
    query = sa.select(devices).where(device_filter(prefix)).order_by(devices.c.id)
    if device_id is not None:
        query = query.where(devices.c.id == device_id)
    with engine.connect() as conn:
        started = conn.execute(sa.select(meta.c.value).where(meta.c.key == INGEST_STARTED_KEY)).scalar()
        rows = conn.execute(query).mappings().all()
    ingest_started = float(started) if started else None
    out = []
    for row in rows:
        item = {k: v for k, v in row.items() if k != "mqtt_secret_hash"}
        item["liveness"] = liveness(item, now=now, ingest_started=ingest_started, offline_after_s=offline_after_s)
        out.append(item)
    return out
