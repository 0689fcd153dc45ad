"""SLA rules as data: accept and resolve minutes per category, severity and level.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "sla_rules",
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("severity", sa.String(16), primary_key=True),
        sa.Column("level", sa.String(8), primary_key=True),
        sa.Column("accept_min", sa.Float, nullable=False),
        sa.Column("resolve_min", sa.Float, nullable=False),
        sa.Column("working_time", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sla_rules")
