"""Working time: SLA clocks count only working hours on working days, from a calendar stored
as data (holidays, and the weekend days that are worked instead, 调休)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .schema import calendar_days

DEFAULT_HOURS = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))


@dataclass
class Calendar:
    """Working days are Monday to Friday unless ``overrides`` says otherwise for a date."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    hours: tuple[tuple[dt.time, dt.time], ...] = DEFAULT_HOURS
    overrides: dict[dt.date, bool] = field(default_factory=dict)  # date -> is a working day

    @classmethod
    def load(cls, conn: sa.Connection, **kwargs) -> "Calendar":
        rows = conn.execute(sa.select(calendar_days.c.day, calendar_days.c.kind)).all()
        return cls(overrides={dt.date.fromisoformat(r.day): r.kind == "workday" for r in rows}, **kwargs)

    def is_working_day(self, day: dt.date) -> bool:
        return self.overrides.get(day, day.weekday() < 5)

    def add(self, start: float, minutes: float) -> float:
        """The unix time when ``minutes`` of working time have passed after ``start``."""
        remaining = dt.timedelta(minutes=minutes)
        now = dt.datetime.fromtimestamp(start, self.tz)
        for _ in range(3660):  # ten years of days at most
            day = now.date()
            if self.is_working_day(day):
                for begin, end in self.hours:
                    b = dt.datetime.combine(day, begin, self.tz)
                    e = dt.datetime.combine(day, end, self.tz)
                    if now >= e:
                        continue
                    s = max(now, b)
                    if s + remaining <= e:
                        return (s + remaining).timestamp()
                    remaining -= e - s
                    now = e
            now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)
        raise ValueError("no working time found within ten years: check the calendar")

    def between(self, start: float, end: float) -> float:
        """Working minutes between two unix times."""
        if end <= start:
            return 0.0
        total = 0.0
        a = dt.datetime.fromtimestamp(start, self.tz)
        b = dt.datetime.fromtimestamp(end, self.tz)
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                for begin, finish in self.hours:
                    s = max(a, dt.datetime.combine(day, begin, self.tz))
                    e = min(b, dt.datetime.combine(day, finish, self.tz))
                    if e > s:
                        total += (e - s).total_seconds() / 60
            day += dt.timedelta(days=1)
        return total
