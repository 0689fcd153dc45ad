"""Hub database: engine set-up (SQLite with WAL, or PostgreSQL) and Alembic migrations. The
tables are in ``hub.schema``; the one dialect difference the code needs (insert-or-ignore) in
``hub.sqlutil``."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig


MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CHECKPOINT_EVERY_S = 1.0  # how often the hub copies SQLite's WAL into the database

logger = logging.getLogger(__name__)


def make_engine(url: str, *, background_checkpoints: bool = False) -> sa.Engine:
    """``background_checkpoints`` (SQLite): no write copies the WAL into the database itself (SQLite
    does that in whichever commit crosses 1,000 pages, an alarm's as likely as a backlog's); the
    caller runs a ``Checkpointer`` instead."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a row is fsynced before the hub acks it
            cur.execute("PRAGMA foreign_keys=ON")
            if background_checkpoints:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()
        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Checkpointer:
    """SQLite: copies the WAL into the database (a passive checkpoint: it never waits for, or
    blocks, a writer). Call it from one thread, every second (the hub runs it as a
    ``common.lifecycle.Periodic``); ``close`` after the last call."""

    def __init__(self, engine: sa.Engine):
        self.path = engine.url.database
        self._conn: sqlite3.Connection | None = None

    def __call__(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            logger.warning("database checkpoint failed: %s", exc)

    def close(self) -> None:
        if self._conn is not None:
            self()
            self._conn.close()
            self._conn = None


class WriteGate:
    """Writers on the alarm path (an alarm's ticket change, the urgent ingest lane) go first.
    Bulk writers (the main ingest lane) wait before each transaction while one is writing. On
    SQLite (``serialize``) the hub's writers also take one in-process lock, so an alarm's write
    starts the moment a bulk transaction ends instead of sleeping in SQLite's busy handler (which
    backs off up to 100 ms between tries)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._urgent = 0
        self._lock = threading.Lock()
        self.serialize = False

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        with self._cond:
            self._urgent += 1
        try:
            with self._serialized():
                yield
        finally:
            with self._cond:
                self._urgent -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def bulk(self, max_wait_s: float) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._urgent == 0, timeout=max_wait_s)
        with self._serialized():
            yield

    @contextlib.contextmanager
    def _serialized(self) -> Iterator[None]:
        if not self.serialize:
            yield
            return
        with self._lock:
            yield

    def busy(self) -> bool:
        return self._urgent > 0


#: the process's gate (the hub runs its web, ingest lanes and senders in one process)
WRITE_GATE = WriteGate()


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    from . import ticketstats  # figures computed from the data, once (revision 0012 made their tables)
    ticketstats.ensure_built(engine)
