"""Times as people type them into a filter: unix seconds, or ISO 8601. One rule for both web
apps: a time without an offset is in ``LOCAL_ZONE`` (China Standard Time, where the people who
use the pages are), never silently UTC on one side and the machine's zone on the other."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


def parse_time(value: str, zone: ZoneInfo = LOCAL_ZONE) -> float:
    """Unix seconds from ``value``; ``ValueError`` saying what is accepted."""
    try:
        number = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a time: {value[:40]!r} (unix seconds or ISO 8601)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        return dt.timestamp()
    if not math.isfinite(number) or not 0 <= number <= 1e11:
        raise ValueError(f"not a time: {value[:40]!r} (unix seconds or ISO 8601)")
    return number
