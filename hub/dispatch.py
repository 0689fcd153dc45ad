"""The dispatch queue: tickets through 上报 → 已分拨 → 已受理 → 处置中 → 处置完毕 → 核查通过/核查退回 → 归档,
with 退回, 移交, 合并 and 作废; routing to grids, SLA clocks per level and escalation village →
town → county (小事不出村、大事不出镇). Plain functions over the database: the web layer, the API,
the MQTT ingest and the tests all call these.

Every change of a ticket is one transaction that updates the ticket only if it is still in
the state the change starts from (so of two operators accepting at once exactly one wins) and
writes a transition row: actor, action, from, to, level, reason, time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from common.explained import N_, Explained

from . import ticketstats
from .access import ticket_filter
from .areas import AreaCode
from .schema import devices, grids, notifications, sla_rules, ticket_photos, ticket_transitions, tickets
from .worktime import Calendar

#: a ticket's states (labels in the hub's catalogue, hub.web.i18n)
STATES = ("reported", "dispatched", "accepted", "handling", "resolved", "verified", "returned", "archived", "merged",
          "void")
#: categories of tickets (labels in the catalogue); SLA rules, ticket rules and reports name one
CATEGORIES = ("alarm", "night_intrusion", "security", "fire", "road", "dispute", "safety", "environment",
              "maintenance", "other")
OPEN_STATES = ("reported", "dispatched", "accepted", "handling", "resolved", "returned")
LEVELS = ("village", "town", "county")

#: action -> (states it may start from, state it leads to); None keeps the state
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "dispatch": (("reported",), "dispatched"),                          # 分拨
    "send_back": (("dispatched", "accepted"), "reported"),              # 退回 to the dispatcher
    "accept": (("dispatched",), "accepted"),                            # 受理
    "start": (("accepted", "returned"), "handling"),                    # 处置
    "resolve": (("handling",), "resolved"),                             # 处置完毕
    "verify": (("resolved",), "verified"),                              # 核查通过
    "reject": (("resolved",), "returned"),                              # 核查退回
    "archive": (("verified",), "archived"),                             # 归档
    "transfer": (("dispatched", "accepted", "handling"), "dispatched"),  # 移交
    "merge": (("reported", "dispatched"), "merged"),                    # 合并
    "void": (("reported", "dispatched"), "void"),                       # 作废
    "progress": (("accepted", "handling", "returned"), None),           # 处置进展 (a note)
    "urge": (OPEN_STATES, None),                                        # 催办
    "supervise": (OPEN_STATES, None),                                   # 督办
}


class DispatchError(Explained):
    """A ticket change that is not allowed."""


class Conflict(DispatchError):
    """The ticket changed under us (for example: someone else accepted it first)."""


@dataclass(frozen=True)
class Sla:
    accept_min: float
    resolve_min: float
    working_time: bool = True


#: default SLA per level, where no rule is stored (`xl-hub sla set`); urgent tickets (panic
#: button) run on wall-clock minutes
DEFAULT_SLA = {
    ("normal", "village"): Sla(240, 3 * 480), ("normal", "town"): Sla(240, 3 * 480),
    ("normal", "county"): Sla(480, 5 * 480),
    ("urgent", "village"): Sla(5, 60, False), ("urgent", "town"): Sla(5, 60, False),
    ("urgent", "county"): Sla(5, 60, False),
}
URGENT_TARGETS = ("police_station", "town_centre", "county_centre")


def _sla(conn: sa.Connection, category: str, severity: str, level: str) -> Sla:
    """The SLA stored for this category (or for every category, "*"), else the default."""
    rows = conn.execute(sa.select(sla_rules).where(sla_rules.c.category.in_((category, "*")))
                        .where(sla_rules.c.severity == severity).where(sla_rules.c.level == level)).mappings().all()
    best = min(rows, key=lambda r: r["category"] == "*", default=None)  # the category's own rule first
    if best is None:
        return DEFAULT_SLA[(severity, level)]
    return Sla(best["accept_min"], best["resolve_min"], bool(best["working_time"]))


def set_sla(engine: sa.Engine, category: str, severity: str, level: str, accept_min: float, resolve_min: float,
            working_time: bool = True) -> None:
    if severity not in ("normal", "urgent") or level not in LEVELS:
        raise DispatchError(N_("severity: normal or urgent; level: village, town or county"))
    if not 0 < accept_min <= resolve_min:
        raise DispatchError(N_("need 0 < accept minutes <= resolve minutes"))
    with engine.begin() as conn:
        conn.execute(sla_rules.delete().where(sla_rules.c.category == category)
                     .where(sla_rules.c.severity == severity).where(sla_rules.c.level == level))
        conn.execute(sla_rules.insert().values(category=category, severity=severity, level=level,
                                               accept_min=accept_min, resolve_min=resolve_min,
                                               working_time=working_time))


def _dues(cal: Calendar, sla: Sla, start: float) -> tuple[float, float]:
    if sla.working_time:
        return cal.add(start, sla.accept_min), cal.add(start, sla.resolve_min)
    return start + sla.accept_min * 60, start + sla.resolve_min * 60


def transition_row(conn, ticket_id: int, actor: str, action: str, frm: str, to: str, level: str,
                    reason: str | None, at: float) -> None:
    conn.execute(ticket_transitions.insert().values(ticket_id=ticket_id, actor=actor, action=action,
                                                    from_state=frm, to_state=to, level=level, reason=reason, at=at))


def _notify(conn, ticket_id: int, target: str, scope: str | None, reason: str, at: float) -> None:
    conn.execute(notifications.insert().values(ticket_id=ticket_id, target=target, scope_code=scope, reason=reason,
                                               created_at=at))


def village_of(conn, grid_code: str | None) -> str | None:
    if grid_code is None:
        return None
    return conn.execute(sa.select(grids.c.village_code).where(grids.c.code == grid_code)).scalar()


def area_chain(conn, village_code: str | None) -> dict[str, str]:
    """{"village": code, "town": code, "county": code} for a village (see hub.areas)."""
    return AreaCode.parse(village_code).chain() if village_code else {}


def create_ticket(engine: sa.Engine, *, category: str, title: str, source: str, actor: str = "system",
                  severity: str = "normal", description: str | None = None, grid_code: str | None = None,
                  device_id: str | None = None, event_id: str | None = None, now: float | None = None,
                  calendar: Calendar | None = None) -> int | None:
    """Report a matter (上报) and route it (分拨) to its grid's village level at once; an urgent one
    notifies the police station, town centre and county centre together. Returns the ticket id,
    or None if a ticket for ``event_id`` exists already (ingest may see an event twice)."""
    with engine.begin() as conn:
        return open_ticket(conn, category=category, title=title, source=source, actor=actor, severity=severity,
                           description=description, grid_code=grid_code, device_id=device_id, event_id=event_id,
                           now=now, calendar=calendar)


def open_ticket(conn: sa.Connection, *, category: str, title: str, source: str, actor: str = "system",
                severity: str = "normal", description: str | None = None, grid_code: str | None = None,
                device_id: str | None = None, event_id: str | None = None, now: float | None = None,
                calendar: Calendar | None = None) -> int | None:
    """``create_ticket`` in the caller's transaction."""
    now = time.time() if now is None else now
    if event_id and conn.execute(sa.select(tickets.c.id).where(tickets.c.event_id == event_id)).first():
        return None
    if grid_code is None and device_id:
        grid_code = conn.execute(sa.select(devices.c.grid_code).where(devices.c.id == device_id)).scalar()
    village = village_of(conn, grid_code)
    cal = calendar or Calendar.load(conn)
    accept_due, resolve_due = _dues(cal, _sla(conn, category, severity, "village"), now)
    row = dict(category=category, severity=severity, state="dispatched", level="village", title=title,
               description=description, source=source, event_id=event_id, device_id=device_id, grid_code=grid_code,
               village_code=village, created_at=now, accept_due=accept_due, resolve_due=resolve_due)
    ticket_id = conn.execute(tickets.insert().values(**row)).inserted_primary_key[0]
    ticketstats.apply(conn, None, row)
    transition_row(conn, ticket_id, actor, "report", "reported", "reported", "village", None, now)
    transition_row(conn, ticket_id, "system", "dispatch", "reported", "dispatched", "village",
                    f"grid {grid_code}" if grid_code else "no grid", now)
    _notify(conn, ticket_id, "grid_workers", grid_code, "dispatched", now)
    if severity == "urgent":
        chain = area_chain(conn, village)
        for target, level in zip(URGENT_TARGETS, ("town", "town", "county")):
            _notify(conn, ticket_id, target, chain.get(level), "urgent", now)
    return int(ticket_id)


def ticket_for_event(engine: sa.Engine, event_id: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(tickets.c.id).where(tickets.c.event_id == event_id)).scalar()


def get_ticket(engine: sa.Engine, ticket_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).mappings().first()
    return dict(row) if row else None


#: called in the transaction of a change: (connection, ticket before, action, actor, now)
Effects = Callable[[sa.Connection, dict[str, Any], str, str, float], None]


def is_alarm_ticket(ticket: dict[str, Any]) -> bool:
    return ticket["source"] == "alarm" and ticket["event_id"] is not None


def act(engine: sa.Engine, ticket_id: int, action: str, actor: str, *, reason: str | None = None,
        grid_code: str | None = None, merged_into: int | None = None, now: float | None = None,
        calendar: Calendar | None = None, scope: str | None = None, effects: Effects | None = None
        ) -> dict[str, Any]:
    """Apply ``action`` to a ticket; raise ``DispatchError`` if it is not allowed from the
    ticket's state and ``Conflict`` if another change won the race. Returns the new ticket.
    ``scope`` is the actor's area prefix (see hub.access; None: the whole county): a merge target
    and a transfer grid must lie inside it, and a merge target must still be open. ``effects``
    runs in the same transaction once the change is made; an alarm's ticket changes only with
    the effects of ``hub.alarms`` (its commands to the pillar), so only through that module."""
    if action not in ACTIONS:
        raise DispatchError(N_("unknown action %(action)s"), action=action[:40])
    sources, target = ACTIONS[action]
    now = time.time() if now is None else now
    with engine.begin() as conn:
        row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).mappings().first()
        if row is None:
            raise DispatchError(N_("no ticket %(ticket)s"), ticket=ticket_id)
        state = row["state"]
        if is_alarm_ticket(row) and effects is None:
            raise DispatchError(N_("ticket %(ticket)s is an alarm's: it changes through hub.alarms"), ticket=ticket_id)
        if state not in sources:
            raise DispatchError(N_("cannot %(action)s a ticket that is %(state)s"), action=action, state=state)
        if action in ("send_back", "reject", "void", "transfer", "progress") and not reason:
            raise DispatchError(N_("%(action)s needs a reason"), action=action)
        values: dict[str, Any] = {}
        new_state = target or state
        if target:
            values["state"] = target
        if action == "accept":
            values.update(accepted_at=now, assignee=actor)
        elif action == "resolve":
            values["resolved_at"] = now
        elif action in ("archive", "merge", "void"):
            values["closed_at"] = now
        elif action == "urge":
            values["urge_count"] = row["urge_count"] + 1
        elif action == "supervise":
            values["supervise_count"] = row["supervise_count"] + 1
        if action == "merge":
            if merged_into is None or merged_into == ticket_id:
                raise DispatchError(N_("merge needs another ticket to merge into"))
            target = conn.execute(sa.select(tickets.c.state).where(tickets.c.id == merged_into)
                                  .where(ticket_filter(scope))).scalar()
            if target is None:
                raise DispatchError(N_("no ticket %(ticket)s in your area to merge into"), ticket=merged_into)
            if target not in OPEN_STATES:
                raise DispatchError(N_("ticket %(ticket)s is %(state)s; merge into an open one"), ticket=merged_into,
                                    state=target)
            values["merged_into"] = merged_into
        if action == "transfer":
            if grid_code is None:
                raise DispatchError(N_("transfer needs the grid to hand the ticket to"))
            village = village_of(conn, grid_code)
            if village is None or (scope is not None and not grid_code.startswith(scope)):
                raise DispatchError(N_("no grid %(grid)s in your area"), grid=grid_code[:40])
            cal = calendar or Calendar.load(conn)
            accept_due, resolve_due = _dues(cal, _sla(conn, row["category"], row["severity"], row["level"]), now)
            values.update(grid_code=grid_code, village_code=village, assignee=None, accepted_at=None,
                          accept_due=accept_due, resolve_due=resolve_due)
        if not values:  # a note (progress): nothing changes but the guard below must still hold
            values["state"] = state
        # conditional update: only if nobody changed the ticket since we read it
        result = conn.execute(tickets.update().where(tickets.c.id == ticket_id).where(tickets.c.state == state)
                              .where(tickets.c.urge_count == row["urge_count"])
                              .where(tickets.c.supervise_count == row["supervise_count"]).values(**values))
        if result.rowcount != 1:
            raise Conflict(N_("ticket %(ticket)s was changed by someone else; reload it"), ticket=ticket_id)
        ticketstats.apply(conn, dict(row), {**row, **values})
        transition_row(conn, ticket_id, actor, action, state, new_state, row["level"], reason, now)
        if action == "transfer":
            _notify(conn, ticket_id, "grid_workers", grid_code, "transferred", now)
        if effects is not None:
            effects(conn, dict(row), action, actor, now)
        return dict(conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).mappings().first())


def escalate_overdue(engine: sa.Engine, *, now: float | None = None, calendar: Calendar | None = None
                     ) -> list[int]:
    """Move tickets whose accept or resolve clock has run out one level up (village → town →
    county), with a fresh clock for the new level, and notify that level. The lower level's
    record keeps the miss (its transition row); the new level starts clean. Returns the ids."""
    now = time.time() if now is None else now
    moved = []
    with engine.begin() as conn:
        cal = calendar or Calendar.load(conn)
        late = conn.execute(sa.select(tickets).where(tickets.c.level != "county").where(sa.or_(
            sa.and_(tickets.c.state == "dispatched", tickets.c.accept_due < now),
            sa.and_(tickets.c.state.in_(("accepted", "handling", "returned")), tickets.c.resolve_due < now),
        ))).mappings().all()
        for t in late:
            level = LEVELS[LEVELS.index(t["level"]) + 1]
            missed = "accept" if t["state"] == "dispatched" else "resolve"
            accept_due, resolve_due = _dues(cal, _sla(conn, t["category"], t["severity"], level), now)
            values: dict[str, Any] = {"level": level, "resolve_due": resolve_due}
            if missed == "accept":
                values["accept_due"] = accept_due
            done = conn.execute(tickets.update().where(tickets.c.id == t["id"]).where(tickets.c.level == t["level"])
                                .where(tickets.c.state == t["state"]).values(**values)).rowcount
            if done != 1:
                continue
            transition_row(conn, t["id"], "system", "escalate", t["state"], t["state"], level,
                            f"{t['level']} missed the {missed} deadline", now)
            chain = area_chain(conn, t["village_code"])
            _notify(conn, t["id"], f"{level}_centre", chain.get(level), f"escalated:{missed}", now)
            moved.append(int(t["id"]))
    return moved


def open_offline_tickets(engine: sa.Engine, *, silent_after_s: float, now: float | None = None,
                         calendar: Calendar | None = None) -> list[int]:
    """A registered device silent for longer than ``silent_after_s`` gets one maintenance ticket
    (运维), routed to its grid, until that ticket is closed. Returns the new ticket ids."""
    now = time.time() if now is None else now
    open_maintenance = sa.select(tickets.c.device_id).where(tickets.c.category == "maintenance") \
        .where(tickets.c.state.in_(OPEN_STATES)).where(tickets.c.device_id.is_not(None))
    with engine.connect() as conn:
        silent = conn.execute(sa.select(devices.c.id, devices.c.name).where(devices.c.registered.is_(True))
                              .where(devices.c.last_seen < now - silent_after_s)
                              .where(devices.c.id.not_in(open_maintenance))).all()
    made = []
    for device_id, name in silent:
        ticket_id = create_ticket(engine, category="maintenance", title=f"device offline: {name or device_id}",
                                  source="offline", device_id=device_id, now=now, calendar=calendar)
        if ticket_id is not None:
            made.append(ticket_id)
    return made


MAX_PHOTO_BYTES = 4 * 1024 * 1024


def add_photo(engine: sa.Engine, ticket_id: int, actor: str, jpeg: bytes, purpose: str) -> int:
    """Attach a JPEG (report, progress or resolution photo); returns its id."""
    import hashlib
    if not jpeg.startswith(b"\xff\xd8\xff") or len(jpeg) > MAX_PHOTO_BYTES:
        raise DispatchError(N_("a photo must be a JPEG of at most %(mb)s MB"), mb=MAX_PHOTO_BYTES // (1024 * 1024))
    with engine.begin() as conn:
        return int(conn.execute(ticket_photos.insert().values(
            ticket_id=ticket_id, actor=actor, purpose=purpose, sha256=hashlib.sha256(jpeg).hexdigest(), jpeg=jpeg,
            at=time.time())).inserted_primary_key[0])
