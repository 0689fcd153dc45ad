from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Mosquitto, create_pg_database

# Modules whose tests hold a bound against the wall clock (an alarm within 1 s, a stop within 5 s, a
# stall noticed in its seconds, an MCU heartbeat missed after 2 s, detection at the camera's frame
# rate): `make test` runs them alone, after the rest has run in parallel, so that nothing else
# competes with them for the two cores. (test_sync_e2e loads the machine but asserts exactly-once
# with generous waits: it runs in parallel.)
SERIAL_MODULES = {"test_alarm_loop", "test_alarm_faults", "test_daemon_lifecycle", "test_device_isolation",
                  "test_camera_watchdog", "test_live_soak", "test_pillar", "test_vision_rates"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).stem in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh hub database on SQLite and on PostgreSQL (127.0.0.1:5432)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        url, drop = create_pg_database()
        yield url
        drop()


@pytest.fixture
def procs():
    """Processes a test starts; all stopped at teardown, whatever happened."""
    started = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture
def engine(db_url):
    """A migrated hub database (SQLite and PostgreSQL)."""
    from hub.db import make_engine, migrate
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()
