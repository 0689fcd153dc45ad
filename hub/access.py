"""Area-scoped access: a user sees the subtree of the area or grid they are scoped to.

Civil codes nest by prefix (GB/T 2260 and the statistical codes): a county's six digits start
its towns' codes, a town's nine digits its villages', a village's twelve digits its grids'. So
"inside my scope" is a prefix match on the grid code.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import areas, devices, grids, tickets

PREFIX_DIGITS = {"county": 6, "town": 9, "village": 12}

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
    level = conn.execute(sa.select(areas.c.level).where(areas.c.code == scope_code)).scalar()
    if level:
        return scope_code[:PREFIX_DIGITS[level]]
    if conn.execute(sa.select(grids.c.code).where(grids.c.code == scope_code)).first():
        return scope_code
    raise AccessError(f"scope {scope_code!r} is neither a known area nor a known grid")


def ticket_filter(prefix: str | None):
    if prefix is None:
        return sa.true()
    return sa.or_(tickets.c.grid_code.startswith(prefix, autoescape=True),
                  sa.and_(tickets.c.grid_code.is_(None), tickets.c.village_code.startswith(prefix, autoescape=True)))


def device_filter(prefix: str | None):
    if prefix is None:
        return sa.true()
    return devices.c.grid_code.startswith(prefix, autoescape=True)
