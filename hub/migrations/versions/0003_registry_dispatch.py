"""Grid registry (areas, grids, people and roles), dispatch queue (tickets, transitions,
notifications), working calendar and audit log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TABLES = ("areas", "grids", "people", "person_roles", "tickets", "ticket_transitions", "notifications",
          "calendar_days", "audit_log")


def upgrade() -> None:
    # written out as the tables were at this revision; later changes are later revisions
    metadata = sa.MetaData()
    sa.Table(
        "areas", metadata,
        sa.Column("code", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("parent_code", sa.String(12), sa.ForeignKey("areas.code")),
    )
    sa.Table(
        "grids", metadata,
        sa.Column("code", sa.String(19), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), sa.ForeignKey("areas.code"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        sa.Column("boundary", sa.JSON),
    )
    sa.Table(
        "people", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("username", sa.String(64)),
    )
    sa.Table(
        "person_roles", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("scope_code", sa.String(19), nullable=False),
    )
    sa.Table(
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
    sa.Table(
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
    sa.Table(
        "notifications", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("scope_code", sa.String(19)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    sa.Table(
        "calendar_days", metadata,
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64)),
    )
    sa.Table(
        "audit_log", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object", sa.String(64)),
        sa.Column("detail", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
    )
    bind = op.get_bind()
    for name in TABLES:
        metadata.tables[name].create(bind)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
