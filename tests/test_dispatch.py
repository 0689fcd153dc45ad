"""The dispatch queue on SQLite and PostgreSQL: transitions, races, routing, SLA escalation."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from hub import dispatch
from hub.schema import areas, calendar_days, grids, notifications, ticket_transitions, tickets
from hub.worktime import Calendar

TZ = ZoneInfo("Asia/Shanghai")
COUNTY, TOWN, VILLAGE, GRID_A, GRID_B = "330102000000", "330102001000", "330102001001", "330102001001001", \
    "330102001001002"


def at(*args) -> float:
    return dt.datetime(*args, tzinfo=TZ).timestamp()


@pytest.fixture
def engine(engine):
    """The migrated database with a county, a town, a village and two grids."""
    with engine.begin() as conn:
        conn.execute(areas.insert(), [
            {"code": COUNTY, "name": "西湖区", "level": "county", "parent_code": None},
            {"code": TOWN, "name": "留下街道", "level": "town", "parent_code": COUNTY},
            {"code": VILLAGE, "name": "小和山村", "level": "village", "parent_code": TOWN},
        ])
        conn.execute(grids.insert(), [
            {"code": GRID_A, "name": "一网格", "village_code": VILLAGE, "kind": "综合"},
            {"code": GRID_B, "name": "二网格", "village_code": VILLAGE, "kind": "综合"},
        ])
    return engine


def _ticket_in(engine, state: str) -> int:
    tid = dispatch.create_ticket(engine, category="road", title="路灯坏了", source="manual", grid_code=GRID_A)
    with engine.begin() as conn:
        conn.execute(tickets.update().where(tickets.c.id == tid).values(state=state))
    return tid


CASES = [(action, state) for action in dispatch.ACTIONS for state in dispatch.STATES]


@pytest.mark.parametrize("action, state", CASES, ids=[f"{a}-from-{s}" for a, s in CASES])
def test_every_legal_and_illegal_transition(engine, action, state):
    tid = _ticket_in(engine, state)
    other = _ticket_in(engine, "dispatched")
    sources, target = dispatch.ACTIONS[action]
    kwargs = {"reason": "理由", "grid_code": GRID_B, "merged_into": other}
    if state in sources:
        after = dispatch.act(engine, tid, action, "op1", **kwargs)
        assert after["state"] == (target or state)
        with engine.connect() as conn:
            row = conn.execute(sa.select(ticket_transitions).where(ticket_transitions.c.ticket_id == tid)
                               .order_by(ticket_transitions.c.id.desc())).mappings().first()
        assert (row["action"], row["from_state"], row["to_state"], row["actor"]) == (action, state, after["state"], "op1")
    else:
        with pytest.raises(dispatch.DispatchError, match=f"cannot {action}"):
            dispatch.act(engine, tid, action, "op1", **kwargs)
        assert dispatch.get_ticket(engine, tid)["state"] == state


def test_reasons_are_required_where_the_workflow_asks_for_them(engine):
    tid = _ticket_in(engine, "dispatched")
    with pytest.raises(dispatch.DispatchError, match="needs a reason"):
        dispatch.act(engine, tid, "send_back", "op1")


def test_urge_and_supervise_count(engine):
    tid = _ticket_in(engine, "dispatched")
    dispatch.act(engine, tid, "urge", "town-op")
    dispatch.act(engine, tid, "urge", "town-op")
    t = dispatch.act(engine, tid, "supervise", "county-op")
    assert (t["urge_count"], t["supervise_count"], t["state"]) == (2, 1, "dispatched")


def test_two_operators_accepting_at_once_exactly_one_wins(engine):
    tid = _ticket_in(engine, "dispatched")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            dispatch.act(engine, tid, "accept", f"op{n}")
            outcomes.append("won")
        except dispatch.DispatchError:
            outcomes.append("lost")
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    with engine.connect() as conn:
        accepts = conn.execute(sa.select(sa.func.count()).select_from(ticket_transitions)
                               .where(ticket_transitions.c.action == "accept")).scalar()
    assert accepts == 1


def test_panic_alarm_notifies_police_town_and_county_at_once(engine):
    tid = dispatch.create_ticket(engine, category="alarm", severity="urgent", title="报警柱求助", source="alarm",
                                 grid_code=GRID_A, event_id="0190a0b0-0000-7000-8000-000000000001", now=at(2026, 11, 1, 3, 0))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(notifications.c.target, notifications.c.scope_code)
                            .where(notifications.c.ticket_id == tid)).all()
    assert set(rows) == {("grid_workers", GRID_A), ("police_station", TOWN), ("town_centre", TOWN),
                         ("county_centre", COUNTY)}
    t = dispatch.get_ticket(engine, tid)
    assert t["accept_due"] - t["created_at"] == 5 * 60  # minutes on the wall clock, even at 3 am on a Sunday
    # the same event again makes no second ticket
    assert dispatch.create_ticket(engine, category="alarm", severity="urgent", title="x", source="alarm",
                                  grid_code=GRID_A, event_id="0190a0b0-0000-7000-8000-000000000001") is None


def test_escalation_counts_working_time_across_a_weekend_and_a_holiday(engine):
    with engine.begin() as conn:
        conn.execute(calendar_days.insert().values(day="2026-11-02", kind="holiday", name="test holiday"))
    friday_4pm = at(2026, 10, 30, 16, 0)
    tid = dispatch.create_ticket(engine, category="road", title="井盖缺失", source="manual", grid_code=GRID_A,
                                 now=friday_4pm)
    # 240 working minutes: 90 on Friday, none on Saturday, Sunday or the Monday holiday, 150 on Tuesday
    assert dispatch.get_ticket(engine, tid)["accept_due"] == at(2026, 11, 3, 11, 0)
    assert dispatch.escalate_overdue(engine, now=at(2026, 11, 2, 23, 0)) == []
    assert dispatch.escalate_overdue(engine, now=at(2026, 11, 3, 10, 59)) == []
    assert dispatch.escalate_overdue(engine, now=at(2026, 11, 3, 11, 1)) == [tid]
    t = dispatch.get_ticket(engine, tid)
    assert (t["level"], t["state"]) == ("town", "dispatched")
    with engine.connect() as conn:
        esc = conn.execute(sa.select(ticket_transitions).where(ticket_transitions.c.action == "escalate")).mappings().one()
        note = conn.execute(sa.select(notifications).where(notifications.c.reason == "escalated:accept")).mappings().one()
    assert esc["level"] == "town" and "village missed the accept deadline" in esc["reason"]
    assert (note["target"], note["scope_code"]) == ("town_centre", TOWN)
    # accepted at town level, then not resolved in time: on to the county, and no further
    dispatch.act(engine, tid, "accept", "town-op", now=at(2026, 11, 3, 11, 30))
    assert dispatch.escalate_overdue(engine, now=at(2026, 12, 31, 12, 0)) == [tid]
    assert dispatch.get_ticket(engine, tid)["level"] == "county"
    assert dispatch.escalate_overdue(engine, now=at(2027, 6, 1, 12, 0)) == []


def test_calendar_between_and_make_up_workdays():
    cal = Calendar(overrides={dt.date(2026, 10, 31): True})  # a Saturday worked instead (调休)
    assert cal.between(at(2026, 10, 30, 17, 0), at(2026, 10, 31, 9, 30)) == 30 + 60
    assert cal.add(at(2026, 10, 30, 17, 0), 60) == at(2026, 10, 31, 9, 0)


def test_transfer_moves_the_ticket_to_another_grid(engine):
    tid = _ticket_in(engine, "accepted")
    t = dispatch.act(engine, tid, "transfer", "op1", reason="属二网格", grid_code=GRID_B)
    assert (t["state"], t["grid_code"], t["assignee"]) == ("dispatched", GRID_B, None)
    with pytest.raises(dispatch.DispatchError, match="no grid"):
        dispatch.act(engine, tid, "transfer", "op1", reason="x", grid_code="999999999999999")


def test_statistics_count_open_overdue_tickets_against_the_on_time_rate(engine):
    from hub import stats
    t0 = at(2026, 11, 2, 9, 0)  # a Monday
    done = dispatch.create_ticket(engine, category="road", title="a", source="manual", grid_code=GRID_A, now=t0)
    late = dispatch.create_ticket(engine, category="road", title="b", source="manual", grid_code=GRID_B, now=t0)
    dispatch.create_ticket(engine, category="road", title="c", source="manual", grid_code=GRID_B, now=t0)
    for action, minutes in (("accept", 10), ("start", 20), ("resolve", 60)):
        dispatch.act(engine, done, action, "w", now=t0 + minutes * 60)
    dispatch.act(engine, late, "void", "w", reason="重复", now=t0 + 60)
    later = t0 + 30 * 86400  # the third ticket is long past its resolve deadline
    figures = stats.compute(engine, now=later)
    total = figures["total"]
    assert (total["tickets"], total["handled"], total["open_overdue"]) == (2, 1, 1)
    assert total["handled_rate"] == 0.5 and total["on_time_rate"] == 0.5
    assert total["median_accept_min"] == 10 and total["median_resolve_min"] == 60
    grid_b = next(g for g in figures["grids"] if g["code"] == GRID_B)
    assert grid_b["on_time_rate"] == 0.0 and grid_b["tickets"] == 1
    assert [t["code"] for t in figures["towns"]] == [TOWN]


def test_a_silent_device_gets_one_maintenance_ticket(engine):
    from hub import registry
    registry.add_device(engine, "33010200001310000001", kind="camera-box", name="村口", grid_code=GRID_A)
    with engine.begin() as conn:
        registry.touch(conn, "33010200001310000001", at(2026, 11, 2, 9, 0))
    assert dispatch.open_offline_tickets(engine, silent_after_s=3600, now=at(2026, 11, 2, 9, 30)) == []
    (tid,) = dispatch.open_offline_tickets(engine, silent_after_s=3600, now=at(2026, 11, 2, 10, 30))
    t = dispatch.get_ticket(engine, tid)
    assert (t["category"], t["grid_code"], t["state"]) == ("maintenance", GRID_A, "dispatched")
    assert dispatch.open_offline_tickets(engine, silent_after_s=3600, now=at(2026, 11, 2, 11, 30)) == []
    dispatch.act(engine, tid, "void", "op", reason="已修复")
    assert len(dispatch.open_offline_tickets(engine, silent_after_s=3600, now=at(2026, 11, 2, 12, 30))) == 1


def test_sla_rules_per_category_are_data(engine):
    t0 = at(2026, 11, 2, 9, 0)  # Monday morning
    dispatch.set_sla(engine, "fire", "normal", "village", 30, 120)
    dispatch.set_sla(engine, "*", "normal", "village", 60, 600)
    fire = dispatch.get_ticket(engine, dispatch.create_ticket(engine, category="fire", title="f", source="manual",
                                                              grid_code=GRID_A, now=t0))
    other = dispatch.get_ticket(engine, dispatch.create_ticket(engine, category="road", title="r", source="manual",
                                                               grid_code=GRID_A, now=t0))
    assert fire["accept_due"] == t0 + 30 * 60 and fire["resolve_due"] == t0 + 120 * 60
    assert other["accept_due"] == t0 + 60 * 60
    # town level has no rule: the default applies after escalation
    assert dispatch.escalate_overdue(engine, now=t0 + 31 * 60) == [fire["id"]]
    # 240 working minutes from 09:31: 149 before lunch, 91 after 13:30
    assert dispatch.get_ticket(engine, fire["id"])["accept_due"] == at(2026, 11, 2, 15, 1)
    with pytest.raises(dispatch.DispatchError):
        dispatch.set_sla(engine, "fire", "normal", "village", 120, 30)


def test_motion_in_a_zone_at_night_opens_one_ticket(engine):
    from hub import registry, rules
    from hub.config import TicketRule
    from protocols.messages import Event
    registry.add_device(engine, "33010200001310000001", kind="camera-box", name="村口", grid_code=GRID_A)
    rule = TicketRule(event="motion", zones=["gate"], start="22:00", end="06:00", category="night_intrusion",
                      title="夜间入侵")
    n = iter(range(1, 100))

    def motion(ts, zones):
        return Event(id=f"0190a0b0-0000-7000-8000-{next(n):012d}", device_id="33010200001310000001", type="motion",
                     ts=ts, seq=1, data={"zones": zones})
    assert rules.apply(engine, [rule], [motion(at(2026, 11, 2, 14, 0), ["gate"])]) == []     # daytime
    assert rules.apply(engine, [rule], [motion(at(2026, 11, 2, 23, 0), ["yard"])]) == []     # other zone
    first = rules.apply(engine, [rule], [motion(at(2026, 11, 2, 23, 0), ["gate"])])
    assert len(first) == 1 and dispatch.get_ticket(engine, first[0])["grid_code"] == GRID_A
    assert rules.apply(engine, [rule], [motion(at(2026, 11, 3, 2, 0), ["gate"])]) == []      # one open per rule
    dispatch.act(engine, first[0], "void", "op", reason="猫")
    assert len(rules.apply(engine, [rule], [motion(at(2026, 11, 3, 5, 59), ["gate"])])) == 1  # after midnight
