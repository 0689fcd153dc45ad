"""The one owner of alarms on the hub.

- An alarm opens its urgent ticket in the transaction that stores the alarm event, before the
  device gets its ack (``open_alarm_ticket``, called by ingest).
- Every change of a ticket, whoever asks (console, ticket API, alarm API, a phone), goes through
  ``act``, which holds the one role check (``allowed``). For an alarm's ticket, the change and
  its command to the pillar are one transaction: accepting it writes ``help_coming``, closing it
  (resolved, voided, merged, archived) writes ``alarm_closed``; ``hub.commands`` delivers them.
- A village monitor's acknowledgement on the device's LAN page (an ``alarm_ack`` event) goes on
  the ticket's timeline and marks the village monitor's notification acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from common.explained import N_
from protocols.messages import Event

from . import commands, dispatch
from .access import may, ticket_filter
from .db import WRITE_GATE
from .schema import events, notifications, tickets

logger = logging.getLogger(__name__)

#: the parties told of an alarm at once (五方联动), and who they are in the registry's areas
PARTIES = ("grid_workers", "village_monitor", "police_station", "town_centre", "county_centre")
#: changes of an alarm's ticket reserved to those who may accept alarms (operators, admins)
RESERVED = frozenset({"accept", "send_back", "transfer", "merge", "void"})
CLOSING = frozenset({"resolve", "void", "merge", "archive"})


class Forbidden(dispatch.DispatchError):
    """The user's role may not make this change."""


class NotFound(dispatch.DispatchError):
    """No such alarm (or ticket) in the user's area."""


def open_alarm_ticket(conn: sa.Connection, device_id: str, event_id: str, now: float) -> int | None:
    """The one way an alarm opens its ticket: urgent, routed at once, the five parties notified
    (the village monitor's LAN page has it already: the device showed it when it was pressed)."""
    ticket_id = dispatch.open_ticket(conn, category="alarm", severity="urgent", source="alarm",
                                     title="panic button", device_id=device_id, event_id=event_id, now=now)
    if ticket_id is not None:
        conn.execute(notifications.insert().values(ticket_id=ticket_id, target="village_monitor", scope_code=None,
                                                   reason="urgent", created_at=now, delivered_at=now))
    return ticket_id


def permission(ticket: dict[str, Any], action: str) -> str:
    """What a role needs to make ``action`` on ``ticket``."""
    if dispatch.is_alarm_ticket(ticket) and action in RESERVED:
        return "accept_alarms"
    return "change_tickets"


def allowed(role: str, ticket: dict[str, Any], action: str) -> bool:
    return action in dispatch.ACTIONS and may(role, permission(ticket, action))


def may_change(role: str) -> bool:
    """May ``role`` change tickets at all (and acknowledge its party's notifications)?"""
    return may(role, "change_tickets")


def allowed_actions(role: str, ticket: dict[str, Any]) -> list[str]:
    """The changes ``role`` may make to ``ticket`` in its present state."""
    return [a for a, (sources, _) in dispatch.ACTIONS.items()
            if ticket["state"] in sources and allowed(role, ticket, a)]


def _effects(conn: sa.Connection, before: dict[str, Any], action: str, actor: str, now: float) -> None:
    device_id, alarm_id = before["device_id"], before["event_id"]
    if device_id is None:
        return
    if action == "accept":
        commands.enqueue(conn, device_id, "help_coming", alarm_id=alarm_id, by=actor, now=now)
    elif action in CLOSING and not commands.exists(conn, device_id, "alarm_closed", alarm_id):
        commands.enqueue(conn, device_id, "alarm_closed", alarm_id=alarm_id, by=actor, now=now)


def act(engine: sa.Engine, ticket_id: int, action: str, user: dict[str, Any], *, scope: str | None,
        reason: str | None = None, grid_code: str | None = None, merged_into: int | None = None,
        now: float | None = None) -> dict[str, Any]:
    """Change a ticket in ``user``'s area (``scope``: its code prefix, None for everything).
    Raises ``NotFound``, ``Forbidden``, ``dispatch.DispatchError`` or ``dispatch.Conflict``."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id).where(ticket_filter(scope))
                           ).mappings().first()
    if row is None:
        raise NotFound(N_("no ticket %(ticket)s"), ticket=ticket_id)
    ticket = dict(row)
    if action not in dispatch.ACTIONS:
        raise NotFound(N_("unknown action %(action)s"), action=action[:40])
    if not allowed(user["role"], ticket, action):
        raise Forbidden(N_("a %(role)s may not %(action)s this ticket"), role=user["role"], action=action)
    if not dispatch.is_alarm_ticket(ticket):
        return dispatch.act(engine, ticket_id, action, user["username"], reason=reason, grid_code=grid_code,
                            merged_into=merged_into, now=now, scope=scope)
    with WRITE_GATE.urgent():  # the pillar is waiting for this
        return dispatch.act(engine, ticket_id, action, user["username"], reason=reason, grid_code=grid_code,
                            merged_into=merged_into, now=now, scope=scope, effects=_effects)


def accept(engine: sa.Engine, alarm_id: str, user: dict[str, Any], *, scope: str | None,
           now: float | None = None) -> dict[str, Any]:
    """Accept an alarm by its id (the alarm API, a phone): its ticket, through ``act``."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(tickets.c.id).where(tickets.c.event_id == alarm_id)
                           .where(tickets.c.source == "alarm").where(ticket_filter(scope))).first()
        known = row is not None or conn.execute(sa.select(events.c.id).where(events.c.id == alarm_id)
                                                .where(events.c.type == "alarm")).first() is not None
    if row is None:
        raise NotFound(N_("no alarm %(alarm)s") if not known else N_("no ticket for alarm %(alarm)s in your area"),
                       alarm=alarm_id)
    return act(engine, row.id, "accept", user, scope=scope, now=now)


def lan_acknowledged(conn: sa.Connection, ev: Event, now: float) -> bool:
    """An ``alarm_ack`` event from a device: its village monitor acknowledged one of its own
    alarms on the LAN page. On the ticket's timeline and the village monitor's notification;
    the ticket's state does not change (the centre still accepts it). False if it names an
    alarm of another device, or one without a ticket."""
    alarm_id, by = ev.data.get("alarm_id"), ev.data.get("by")
    if not isinstance(alarm_id, str):
        return False
    t = conn.execute(sa.select(tickets.c.id, tickets.c.state, tickets.c.level).where(tickets.c.event_id == alarm_id)
                     .where(tickets.c.device_id == ev.device_id).where(tickets.c.source == "alarm")).first()
    if t is None:
        logger.warning("device=%s acknowledged alarm %s, which is not one of its alarms with a ticket",
                       ev.device_id, alarm_id)
        return False
    who = (by if isinstance(by, str) else "?")[:40]
    dispatch.transition_row(conn, t.id, f"{who}@LAN", "lan_ack", t.state, t.state, t.level,
                             "pillar LAN page", ev.ts)
    conn.execute(notifications.update().where(notifications.c.ticket_id == t.id)
                 .where(notifications.c.target == "village_monitor").where(notifications.c.acked_at.is_(None))
                 .values(acked_at=ev.ts, acked_by=who))
    return True
