"""Tables of the grid registry and the dispatch queue (part of ``hub.db.metadata``)."""

from __future__ import annotations

import sqlalchemy as sa


def define(metadata: sa.MetaData, *, with_stats_index: bool = True) -> dict[str, sa.Table]:
    t = {}
    t["areas"] = sa.Table(
        "areas", metadata,
        sa.Column("code", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("parent_code", sa.String(12), sa.ForeignKey("areas.code")),
    )
    t["grids"] = sa.Table(
        "grids", metadata,
        sa.Column("code", sa.String(19), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), sa.ForeignKey("areas.code"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        sa.Column("boundary", sa.JSON),
    )
    t["people"] = sa.Table(
        "people", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("username", sa.String(64)),
    )
    t["person_roles"] = sa.Table(
        "person_roles", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("scope_code", sa.String(19), nullable=False),
    )
    t["tickets"] = sa.Table(
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
    )
    if with_stats_index:  # revision 0005
        sa.Index("ix_tickets_stats", t["tickets"].c.grid_code, t["tickets"].c.village_code, t["tickets"].c.state,
                 t["tickets"].c.created_at, t["tickets"].c.accepted_at, t["tickets"].c.resolved_at,
                 t["tickets"].c.resolve_due)
    t["ticket_transitions"] = sa.Table(
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
    t["notifications"] = sa.Table(
        "notifications", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("scope_code", sa.String(19)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    t["calendar_days"] = sa.Table(
        "calendar_days", metadata,
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64)),
    )
    t["sla_rules"] = sa.Table(  # revision 0006
        "sla_rules", metadata,
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("severity", sa.String(16), primary_key=True),
        sa.Column("level", sa.String(8), primary_key=True),
        sa.Column("accept_min", sa.Float, nullable=False),
        sa.Column("resolve_min", sa.Float, nullable=False),
        sa.Column("working_time", sa.Boolean, nullable=False),
    )
    t["ticket_photos"] = sa.Table(  # revision 0007
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
    t["audit_log"] = sa.Table(
        "audit_log", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object", sa.String(64)),
        sa.Column("detail", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
    )
    return t
