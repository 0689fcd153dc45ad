"""A device's status history; the statistics page's per-grid sums, medians and duration
histograms and its per-town ones (kept by hub.ticketstats, which fills them from the tickets
once: hub.db.migrate); an index for open overdue tickets; grid kinds as identifiers (general,
special) rather than Chinese words.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "device_status_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_device_status_log_device", "device_status_log", ["device_id", "id"])
    op.create_table(
        "ticket_stats",
        sa.Column("grid_key", sa.String(19), primary_key=True),
        sa.Column("village_code", sa.String(12)),
        sa.Column("tickets", sa.Integer, nullable=False),
        sa.Column("handled", sa.Integer, nullable=False),
        sa.Column("resolved", sa.Integer, nullable=False),
        sa.Column("on_time", sa.Integer, nullable=False),
        sa.Column("median_accept", sa.Float),
        sa.Column("median_resolve", sa.Float),
    )
    op.create_table(
        "ticket_durations",
        sa.Column("grid_key", sa.String(19), primary_key=True),
        sa.Column("clock", sa.String(8), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "area_durations",
        sa.Column("area_key", sa.String(12), primary_key=True),
        sa.Column("clock", sa.String(8), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_index("ix_tickets_open_due", "tickets", ["state", "resolve_due"])
    op.execute("UPDATE grids SET kind = 'general' WHERE kind = '综合'")
    op.execute("UPDATE grids SET kind = 'special' WHERE kind = '专属'")


def downgrade() -> None:
    op.execute("UPDATE grids SET kind = '综合' WHERE kind = 'general'")
    op.execute("UPDATE grids SET kind = '专属' WHERE kind = 'special'")
    op.drop_index("ix_tickets_open_due", "tickets")
    op.drop_table("area_durations")
    op.drop_table("ticket_durations")
    op.drop_table("ticket_stats")
    op.drop_table("device_status_log")
