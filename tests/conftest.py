from __future__ import annotations

import pytest

from .helpers import Mosquitto, create_pg_database


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
