from __future__ import annotations

from hub.registry import liveness

NOW = 10_000.0


def test_liveness_rules():
    def f(status=None, last_seen=None, started=NOW - 1000):
        return liveness({"status": status, "last_seen": last_seen}, now=NOW, ingest_started=started,
                        offline_after_s=90)
    assert f("online", NOW - 10) == "online"
    assert f("online", NOW - 100) == "offline"  # heartbeats stopped
    assert f("offline", NOW - 10) == "offline"  # last will or clean stop
    assert f("online", NOW - 10, started=NOW - 5) == "unknown"  # hub just restarted, not heard since
    assert f("online", NOW - 2000, started=NOW - 500) == "offline"  # restarted long ago, still silent
    assert f(None, None, started=NOW - 500) == "unknown"  # never heard of
