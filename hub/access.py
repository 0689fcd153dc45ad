"""Area-scoped access and role permissions: a user sees the subtree of the area or grid they are
scoped to ("inside" is the prefix rule of ``hub.areas``), and may do what their role allows."""

from __future__ import annotations

import sqlalchemy as sa

from .areas import AreaCode, prefix_filter
from .schema import areas, devices, grids, tickets

#: what each role may do in its area beyond reading it: the one place that decides it
PERMISSIONS = {
    "admin": frozenset({"change_tickets", "accept_alarms"}),
    "operator": frozenset({"change_tickets", "accept_alarms"}),
    "grid_worker": frozenset({"change_tickets"}),
    "viewer": frozenset(),
}


def may(role: str, what: str) -> bool:
    """True if ``role`` may ``what`` (``change_tickets``, ``accept_alarms``)."""
    return what in PERMISSIONS.get(role, frozenset())


class AccessError(Exception):
    """The scope code names no known area or grid."""


def scope_prefix(conn: sa.Connection, scope_code: str | None) -> str | None:
    """None: everything. Otherwise the code prefix of the scope's subtree."""
    if not scope_code:
        return None
    known = (conn.execute(sa.select(areas.c.code).where(areas.c.code == scope_code)).first()
             or conn.execute(sa.select(grids.c.code).where(grids.c.code == scope_code)).first())
    if known:
        return AreaCode.parse(scope_code).prefix
    raise AccessError(f"scope {scope_code!r} is neither a known area nor a known grid")


def ticket_filter(prefix: str | None):
    if prefix is None:
        return sa.true()
    return sa.or_(prefix_filter(prefix, tickets.c.grid_code),
                  sa.and_(tickets.c.grid_code.is_(None), prefix_filter(prefix, tickets.c.village_code)))


def device_filter(prefix: str | None):
    return prefix_filter(prefix, devices.c.grid_code)
