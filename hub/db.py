"""Hub database: SQLAlchemy 2 Core tables, engine set-up and Alembic migrations.

The same code runs on SQLite (the default, one file, WAL) and PostgreSQL. Times are unix
seconds (double precision) so that both behave the same.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from . import db_dispatch

metadata = sa.MetaData()

devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(20), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, server_default="unknown"),
    sa.Column("model", sa.String(64)),
    sa.Column("name", sa.String(64)),
    sa.Column("grid_code", sa.String(19)),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("address", sa.String(200)),
    sa.Column("software", sa.String(64)),
    sa.Column("mqtt_secret_hash", sa.String(128)),
    sa.Column("mqtt_broker_hash", sa.String(200)),
    sa.Column("registered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16)),
    sa.Column("status_ts", sa.Float),
    sa.Column("last_seen", sa.Float),
    sa.Column("heartbeat", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    # kind, grid_code and location as the device's birth message gave them (the registry decides)
    sa.Column("reported", sa.JSON),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(20), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
    sa.Index("ix_events_device_ts", "device_id", "ts"),
    sa.Index("ix_events_type_ts", "type", "ts"),
    sa.Index("ix_events_ts", "ts"),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("scope_code", sa.String(19)),
)

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float),
)

login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(160), nullable=False),  # "user:<name>", "addr:<ip>", "token:<ip>"
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_login_failures_key_at", "key", "at"),
)

meta = sa.Table(
    "hub_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

_dispatch = db_dispatch.define(metadata)
areas, grids, people, person_roles = (_dispatch[k] for k in ("areas", "grids", "people", "person_roles"))
tickets, ticket_transitions, notifications = (_dispatch[k] for k in ("tickets", "ticket_transitions",
                                                                     "notifications"))
calendar_days, audit_log, sla_rules = _dispatch["calendar_days"], _dispatch["audit_log"], _dispatch["sla_rules"]
ticket_photos = _dispatch["ticket_photos"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a row is fsynced before the hub acks it
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def insert_ignore(table: sa.Table, dialect: str):
    """``INSERT ... ON CONFLICT DO NOTHING`` for the engine's dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()
