"""One rule for times typed into filters on both web apps: a time without an offset is China
Standard Time, never UTC on one side and the machine's zone on the other."""

from __future__ import annotations

import pytest

from common.times import parse_time


def test_naive_times_are_china_standard_time_and_offsets_are_kept():
    assert parse_time("2026-12-01T08:00:00") == parse_time("2026-12-01T00:00:00+00:00")
    assert parse_time("2026-12-01T08:00:00+08:00") == parse_time("2026-12-01T08:00:00")
    assert parse_time("2026-12-01T08:00:00Z") == parse_time("2026-12-01T16:00:00")
    assert parse_time("1796140800") == 1796140800.0


@pytest.mark.parametrize("bad", ["yesterday", "nan", "inf", "-1", "1e400", "2026-13-01", ""])
def test_anything_else_is_refused(bad):
    with pytest.raises(ValueError, match="unix seconds or ISO 8601"):
        parse_time(bad)
