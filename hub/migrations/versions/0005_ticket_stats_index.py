"""A covering index for the statistics page: per-grid sums and durations read the index, not
the wider ticket rows.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"

COLUMNS = ["grid_code", "village_code", "state", "created_at", "accepted_at", "resolved_at", "resolve_due"]


def upgrade() -> None:
    op.create_index("ix_tickets_stats", "tickets", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_tickets_stats", "tickets")
