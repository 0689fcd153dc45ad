"""The hub's database schema: every table, in one module (SQLAlchemy 2 Core).

The same tables run on SQLite and PostgreSQL; times are unix seconds (double precision) so both
behave the same. Migrations (``hub/migrations/versions``) are written out and frozen: they import
nothing from here, and ``tests/test_schema.py`` fails if the migrated database differs from
these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

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

areas = sa.Table(
    "areas", metadata,
    sa.Column("code", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("parent_code", sa.String(12), sa.ForeignKey("areas.code")),
)
grids = sa.Table(
    "grids", metadata,
    sa.Column("code", sa.String(19), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("village_code", sa.String(12), sa.ForeignKey("areas.code"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("households", sa.Integer),
    sa.Column("population", sa.Integer),
    sa.Column("boundary", sa.JSON),
)
people = sa.Table(
    "people", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("username", sa.String(64)),
)
person_roles = sa.Table(
    "person_roles", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(24), nullable=False),
    sa.Column("scope_code", sa.String(19), nullable=False),
)
tickets = sa.Table(
    "tickets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("event_id", sa.String(36), unique=True),
    sa.Column("device_id", sa.String(20)),
    sa.Column("grid_code", sa.String(19)),
    sa.Column("village_code", sa.String(12)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("accept_due", sa.Float),
    sa.Column("resolve_due", sa.Float),
    sa.Column("accepted_at", sa.Float),
    sa.Column("resolved_at", sa.Float),
    sa.Column("closed_at", sa.Float),
    sa.Column("assignee", sa.String(64)),
    sa.Column("merged_into", sa.Integer),
    sa.Column("urge_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("supervise_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_tickets_state_level", "state", "level"),
    sa.Index("ix_tickets_grid", "grid_code"),
    sa.Index("ix_tickets_open_due", "state", "resolve_due"),  # revision 0012
    # the statistics page reads per-grid sums and durations from this index alone (0005)
    sa.Index("ix_tickets_stats", "grid_code", "village_code", "state", "created_at", "accepted_at",
             "resolved_at", "resolve_due"),
)
ticket_transitions = sa.Table(
    "ticket_transitions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_transitions_ticket", "ticket_id"),
)
notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("scope_code", sa.String(19)),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # revision 0010: delivered (a channel got it: console stream, webhook), acknowledged by whom
    sa.Column("delivered_at", sa.Float),
    sa.Column("acked_at", sa.Float),
    sa.Column("acked_by", sa.String(64)),
    sa.Index("ix_notifications_ticket", "ticket_id"),
)
calendar_days = sa.Table(
    "calendar_days", metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("name", sa.String(64)),
)
sla_rules = sa.Table(  # revision 0006
    "sla_rules", metadata,
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("severity", sa.String(16), primary_key=True),
    sa.Column("level", sa.String(8), primary_key=True),
    sa.Column("accept_min", sa.Float, nullable=False),
    sa.Column("resolve_min", sa.Float, nullable=False),
    sa.Column("working_time", sa.Boolean, nullable=False),
)
ticket_photos = sa.Table(  # revision 0007
    "ticket_photos", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_ticket_photos_ticket", "ticket_id"),
)
device_commands = sa.Table(  # revision 0010: the durable hub -> device command outbox
    "device_commands", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(20), nullable=False),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("alarm_id", sa.String(36)),
    sa.Column("event_id", sa.String(36)),  # revision 0011: the event an upload_clip names
    sa.Column("by", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float),  # next send; NULL once acked
    sa.Column("sent_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_sent_at", sa.Float),
    sa.Column("acked_at", sa.Float),
    sa.Index("ix_device_commands_due", "due_at"),
    sa.Index("ix_device_commands_device", "device_id", "acked_at"),
)
webhook_deliveries = sa.Table(  # revision 0010: one row per notification and webhook
    "webhook_deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.Integer, sa.ForeignKey("notifications.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("webhook", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", sa.Float),  # NULL once delivered or given up
    sa.Column("delivered_at", sa.Float),
    sa.Column("failed_at", sa.Float),
    sa.Column("last_error", sa.String(200)),
    sa.Index("ix_webhook_deliveries_next", "next_at"),
)
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("object", sa.String(64)),
    sa.Column("detail", sa.JSON),
    sa.Column("at", sa.Float, nullable=False),
)
view_sessions = sa.Table(  # revision 0011: 视频调阅登记, one row per live view (or talk) from the hub
    "view_sessions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(20), nullable=False),
    sa.Column("camera", sa.String(32), nullable=False),
    sa.Column("page", sa.String(16), nullable=False),
    sa.Column("quality", sa.String(8), nullable=False),
    sa.Column("talk", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.String(200)),
    sa.Column("ticket_id", sa.Integer),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("outcome", sa.String(16), nullable=False),  # waiting, live, refused, failed, closed, lapsed
    sa.Column("detail", sa.String(200)),
    sa.Index("ix_view_sessions_device", "device_id", "ended_at"),
    sa.Index("ix_view_sessions_started", "started_at"),
)
clips = sa.Table(  # revision 0011: event clips uploaded by devices (asked for, or an alarm's)
    "clips", metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(20), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # requested, uploading, complete, refused, expired
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("requested_by", sa.String(64)),
    sa.Column("bytes_total", sa.BigInteger),
    sa.Column("bytes_received", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sha256", sa.String(64)),
    sa.Column("completed_at", sa.Float),
    sa.Column("path", sa.String(200)),
    sa.Column("error", sa.String(200)),
    sa.Index("ix_clips_state", "state", "completed_at"),
)

device_status_log = sa.Table(  # revision 0012: a device's online/offline changes (the device page's history)
    "device_status_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(20), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_device_status_log_device", "device_id", "id"),
)

ticket_stats = sa.Table(  # revision 0012: the statistics page's sums per grid, kept by hub.ticketstats
    "ticket_stats", metadata,
    sa.Column("grid_key", sa.String(19), primary_key=True),
    sa.Column("village_code", sa.String(12)),
    sa.Column("tickets", sa.Integer, nullable=False),
    sa.Column("handled", sa.Integer, nullable=False),
    sa.Column("resolved", sa.Integer, nullable=False),
    sa.Column("on_time", sa.Integer, nullable=False),
    sa.Column("median_accept", sa.Float),
    sa.Column("median_resolve", sa.Float),
)

ticket_durations = sa.Table(  # revision 0012: minutes to accept / resolve per grid, a histogram
    "ticket_durations", metadata,
    sa.Column("grid_key", sa.String(19), primary_key=True),
    sa.Column("clock", sa.String(8), primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

area_durations = sa.Table(  # revision 0012: minutes to accept / resolve per town and county ("*"), 1% buckets
    "area_durations", metadata,
    sa.Column("area_key", sa.String(12), primary_key=True),
    sa.Column("clock", sa.String(8), primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

leases = sa.Table(  # revision 0013: jobs that run on one hub node at a time (hub.leases)
    "leases", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(120), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
