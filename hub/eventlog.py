"""Events on the hub: idempotent storage by event id, and filtered, paginated queries."""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from protocols.messages import Event

from .sqlutil import insert_ignore
from .schema import devices, events

logger = logging.getLogger(__name__)


def store_events(conn: sa.Connection, batch: list[Event]) -> set[str]:
    """Insert events not stored yet (by id); returns the ids that were new. Runs in the caller's
    transaction: the caller acks only after it commits."""
    if not batch:
        return set()
    now = time.time()
    rows = [{"id": e.id, "device_id": e.device_id, "type": e.type, "priority": e.priority, "ts": e.ts,
             "seq": e.seq, "data": e.data, "stored_at": now} for e in batch]
    stmt = insert_ignore(events, conn.dialect.name).returning(events.c.id)
    return {r[0] for r in conn.execute(stmt, rows).fetchall()}


def _in_scope(prefix: str | None):
    from .access import device_filter
    if prefix is None:
        return sa.true()
    return events.c.device_id.in_(sa.select(devices.c.id).where(device_filter(prefix)))


def query_events(engine: sa.Engine, *, device: str | None = None, type: str | None = None,
                 since: float | None = None, before_id: str | None = None, limit: int = 100,
                 prefix: str | None = None) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` is the keyset cursor of the next page (ids are time-ordered);
    ``prefix`` limits them to devices inside a scope (see hub.access)."""
    query = sa.select(events).where(_in_scope(prefix)).order_by(events.c.id.desc()).limit(limit)
    if device:
        query = query.where(events.c.device_id == device)
    if type:
        query = query.where(events.c.type == type)
    if since is not None:
        query = query.where(events.c.ts >= since)
    if before_id:
        query = query.where(events.c.id < before_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def get_event(engine: sa.Engine, event_id: str, prefix: str | None = None) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(events).where(events.c.id == event_id).where(_in_scope(prefix))).mappings().first()
    return dict(row) if row else None


def merge_alarm_updates(conn: sa.Connection, batch: list[Event]) -> int:
    """Fold ``alarm_update`` events (more presses within the merge window) into their alarm's
    press count. An update changes only an alarm of the device that sent it. Returns how many
    alarms changed."""
    latest: dict[tuple[str, str], int] = {}
    for e in batch:
        alarm_id, presses = e.data.get("alarm_id"), e.data.get("presses")
        if e.type == "alarm_update" and isinstance(alarm_id, str) \
                and isinstance(presses, int) and not isinstance(presses, bool):
            key = (e.device_id, alarm_id)
            latest[key] = max(latest.get(key, 0), presses)
    changed = 0
    for (device_id, alarm_id), presses in latest.items():
        row = conn.execute(sa.select(events.c.data).where(events.c.id == alarm_id)
                           .where(events.c.device_id == device_id).where(events.c.type == "alarm")).first()
        if row is None:
            if conn.execute(sa.select(events.c.device_id).where(events.c.id == alarm_id)).scalar() not in (None, device_id):
                logger.warning("device=%s sent an alarm_update for another device's alarm %s; ignored",
                               device_id, alarm_id[:40])
            continue
        stored = row.data.get("presses")
        if presses <= (stored if isinstance(stored, int) and not isinstance(stored, bool) else 1):
            continue
        conn.execute(events.update().where(events.c.id == alarm_id).values(data={**row.data, "presses": presses}))
        changed += 1
    return changed


def merge_motion_updates(conn: sa.Connection, batch: list[Event]) -> int:
    """Fold ``motion_update`` events (a motion's end, zones, peak area, snapshot and clip, sent
    when it ends) into the ``motion`` event reported when it started, so the motion reads as one
    event. Only a motion of the device that sent the update. Returns how many motions changed."""
    changed = 0
    for e in batch:
        motion_id = e.data.get("motion_id")
        if e.type != "motion_update" or not isinstance(motion_id, str):
            continue
        row = conn.execute(sa.select(events.c.data).where(events.c.id == motion_id)
                           .where(events.c.device_id == e.device_id).where(events.c.type == "motion")).first()
        if row is None:
            logger.warning("device=%s sent a motion_update for %s, which is not one of its motions",
                           e.device_id, motion_id[:40])
            continue
        update = {k: v for k, v in e.data.items() if k != "motion_id"}
        conn.execute(events.update().where(events.c.id == motion_id).values(data={**row.data, **update,
                                                                                 "ended": True}))
        changed += 1
    return changed
