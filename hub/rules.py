"""Tickets from face and motion events, by rules in the hub config (e.g. motion in the
"gate" zone between 22:00 and 06:00). A device has at most one open ticket per rule, so a
night of motion is one matter, not hundreds."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from protocols.messages import Event

from . import dispatch
from .config import TicketRule
from .schema import tickets

logger = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def matches(rule: TicketRule, ev: Event) -> bool:
    if ev.type != rule.event:
        return False
    if rule.zones:
        zones = ev.data.get("zones")
        if not isinstance(zones, list) or not set(rule.zones) & {z for z in zones if isinstance(z, str)}:
            return False
    local = dt.datetime.fromtimestamp(ev.ts, TZ)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(rule.start), _minutes(rule.end)
    return start <= minute < end if start <= end else (minute >= start or minute < end)


def apply(engine: sa.Engine, rules: list[TicketRule], events: list[Event]) -> list[int]:
    """Open tickets for new events that match a rule; returns their ids."""
    made = []
    for ev in events:
        for rule in rules:
            if not matches(rule, ev):
                continue
            with engine.connect() as conn:
                open_already = conn.execute(
                    sa.select(tickets.c.id).where(tickets.c.device_id == ev.device_id)
                    .where(tickets.c.category == rule.category).where(tickets.c.source == rule.event)
                    .where(tickets.c.state.in_(dispatch.OPEN_STATES))).first()
            if open_already:
                continue
            ticket_id = dispatch.create_ticket(engine, category=rule.category, severity=rule.severity,
                                               title=rule.title, source=rule.event, device_id=ev.device_id,
                                               event_id=ev.id, now=ev.ts)
            if ticket_id is not None:
                made.append(ticket_id)
                logger.info("device=%s %s event %s opened ticket %s (%s)", ev.device_id, ev.type, ev.id,
                            ticket_id, rule.category)
    return made
