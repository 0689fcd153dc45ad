"""What the console and the API read, scoped to the caller's area: one place that knows which
tickets, devices and events a user may see (``prefix`` is the user's area, see hub.access;
None: everything). Views translate HTTP to these calls and nothing more."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .access import ticket_filter
from .dispatch import OPEN_STATES
from .schema import (areas, device_status_log, devices, grids, notifications, people, person_roles, ticket_photos, ticket_transitions,
                     tickets, webhook_deliveries)

Row = dict[str, Any]


def ticket(engine: sa.Engine, prefix: str | None, ticket_id: int) -> Row | None:
    """The ticket if it exists inside the area (outside it is the same as missing)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)
                           .where(ticket_filter(prefix))).mappings().first()
    return dict(row) if row else None


def next_due(t) -> tuple[str | None, float | None]:
    """The SLA clock a ticket runs against now: ("accept", when) while it waits to be taken,
    ("resolve", when) while it is worked on, (None, None) once resolved or closed."""
    if t["state"] in ("reported", "dispatched"):
        return "accept", t["accept_due"]
    if t["state"] in ("accepted", "handling", "returned"):
        return "resolve", t["resolve_due"]
    return None, None


def tickets_page(engine: sa.Engine, prefix: str | None, *, filters: dict[str, str | None] | None = None,
                 mine: str | None = None, before_id: int | None = None, limit: int = 50,
                 order: str = "new") -> list[Row]:
    """Newest first (``order="due"``: least SLA time left first, closed ones last); ``filters`` on
    state, level, category, severity, grid_code; ``mine`` (a user name) keeps that user's
    tickets and those waiting to be taken."""
    t = tickets.c
    if order == "due":
        due = sa.case((t.state.in_(("reported", "dispatched")), t.accept_due),
                      (t.state.in_(("accepted", "handling", "returned")), t.resolve_due), else_=None)
        ordering = (due.is_(None), due, t.id.desc())
    else:
        ordering = (t.id.desc(),)
    query = sa.select(tickets).where(ticket_filter(prefix)).order_by(*ordering)
    for name, value in (filters or {}).items():
        if value:
            query = query.where(tickets.c[name] == value)
    if mine is not None:
        query = query.where(sa.or_(tickets.c.assignee == mine, tickets.c.state == "dispatched"))
    if before_id:
        query = query.where(tickets.c.id < before_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.limit(limit)).mappings()]


def open_alarms(engine: sa.Engine, prefix: str | None, limit: int = 50) -> tuple[list[Row], int]:
    """Open urgent tickets in the area, newest first, with the village monitor's acknowledgement on
    the LAN page (``lan_acked_by``, ``lan_acked_at``), and the newest ticket id anywhere (where a
    page's live stream starts)."""
    lan = notifications.alias("lan")
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(tickets, lan.c.acked_by.label("lan_acked_by"), lan.c.acked_at.label("lan_acked_at"))
            .outerjoin(lan, sa.and_(lan.c.ticket_id == tickets.c.id, lan.c.target == "village_monitor"))
            .where(ticket_filter(prefix)).where(tickets.c.severity == "urgent")
            .where(tickets.c.state.in_(OPEN_STATES)).order_by(tickets.c.id.desc()).limit(limit)).mappings()]
        last_id = conn.execute(sa.select(sa.func.max(tickets.c.id))).scalar() or 0
    return rows, last_id


def timeline(engine: sa.Engine, ticket_id: int) -> list[Row]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(ticket_transitions)
                                              .where(ticket_transitions.c.ticket_id == ticket_id)
                                              .order_by(ticket_transitions.c.id)).mappings()]


PARTY_ORDER = ("grid_workers", "village_monitor", "police_station", "town_centre", "county_centre")


def parties(engine: sa.Engine, ticket_id: int) -> list[Row]:
    """Each notified party of a ticket: notified, delivered, acknowledged (when, by whom), and
    its webhook deliveries (attempts, last error)."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(notifications).where(notifications.c.ticket_id == ticket_id)
                                              .order_by(notifications.c.id)).mappings()]
        hooks = conn.execute(sa.select(webhook_deliveries).where(webhook_deliveries.c.notification_id.in_(
            [r["id"] for r in rows] or [0]))).mappings().all()
    for r in rows:
        r["deliveries"] = [dict(h) for h in hooks if h["notification_id"] == r["id"]]
    order = {p: i for i, p in enumerate(PARTY_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r["target"], len(order)), r["id"]))


def photos(engine: sa.Engine, ticket_id: int) -> list[Row]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(ticket_photos.c.id, ticket_photos.c.purpose, ticket_photos.c.actor, ticket_photos.c.at)
            .where(ticket_photos.c.ticket_id == ticket_id).order_by(ticket_photos.c.id)).mappings()]


def photo_jpeg(engine: sa.Engine, ticket_id: int, photo_id: int) -> bytes | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(ticket_photos.c.jpeg).where(ticket_photos.c.id == photo_id)
                            .where(ticket_photos.c.ticket_id == ticket_id)).scalar()


def grid_in_area(engine: sa.Engine, prefix: str | None, grid_code: str) -> bool:
    with engine.connect() as conn:
        known = conn.execute(sa.select(grids.c.code).where(grids.c.code == grid_code)).first()
    return bool(known) and (prefix is None or grid_code.startswith(prefix))


def tickets_with_places(engine: sa.Engine, prefix: str | None, *, closed: tuple[str, ...],
                        status: str | None, limit: int) -> list[Row]:
    """Tickets in the area with their device's place (the Open311 export); ``status`` open or
    closed, by the ``closed`` states."""
    query = (sa.select(tickets, devices.c.latitude, devices.c.longitude, devices.c.address)
             .select_from(tickets.outerjoin(devices, devices.c.id == tickets.c.device_id))
             .where(ticket_filter(prefix)).order_by(tickets.c.id.desc()).limit(limit))
    if status is not None:
        is_closed = tickets.c.state.in_(closed)
        query = query.where(is_closed if status == "closed" else sa.not_(is_closed))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def registry_view(engine: sa.Engine, prefix: str | None, contains) -> tuple[list[Row], list[Row], list[Row]]:
    """Areas inside the area and those above it (a village sees its town and county), its grids,
    and the people with roles in it. ``contains(area_code, prefix)`` is the area rule."""
    with engine.connect() as conn:
        area_rows = [dict(r) for r in conn.execute(sa.select(areas).order_by(areas.c.code)).mappings()
                     if prefix is None or r["code"].startswith(prefix) or contains(r["code"], prefix)]
        grid_rows = [dict(r) for r in conn.execute(sa.select(grids).order_by(grids.c.code)).mappings()
                     if prefix is None or r["code"].startswith(prefix)]
        people_rows = [dict(r) for r in conn.execute(
            sa.select(people.c.name, people.c.phone, person_roles.c.role, person_roles.c.scope_code)
            .join(person_roles, person_roles.c.person_id == people.c.id).order_by(person_roles.c.scope_code))
            .mappings() if prefix is None or r["scope_code"].startswith(prefix)]
    return area_rows, grid_rows, people_rows


def status_history(engine: sa.Engine, device_id: str, limit: int = 20) -> list[Row]:
    """The device's latest online/offline changes, newest first."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(device_status_log).where(device_status_log.c.device_id == device_id)
                                              .order_by(device_status_log.c.id.desc()).limit(limit)).mappings()]


def open_alarm_by_device(engine: sa.Engine, prefix: str | None) -> dict[str, int]:
    """device id -> its newest open urgent ticket (the map's alarm marks)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tickets.c.device_id, sa.func.max(tickets.c.id))
                            .where(ticket_filter(prefix)).where(tickets.c.severity == "urgent")
                            .where(tickets.c.state.in_(OPEN_STATES)).where(tickets.c.device_id.is_not(None))
                            .group_by(tickets.c.device_id)).all()
    return {d: int(i) for d, i in rows}


def grids_with_boundary(engine: sa.Engine, codes: list[str | None]) -> list[Row]:
    """These grids with their boundaries (a ticket's small map)."""
    wanted = [c for c in codes if c]
    if not wanted:
        return []
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(grids).where(grids.c.code.in_(wanted))).mappings()]
