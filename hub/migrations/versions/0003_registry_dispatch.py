"""Grid registry (areas, grids, people and roles), dispatch queue (tickets, transitions,
notifications), working calendar and audit log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from hub import db_dispatch

revision = "0003"
down_revision = "0002"

TABLES = ("areas", "grids", "people", "person_roles", "tickets", "ticket_transitions", "notifications",
          "calendar_days", "audit_log")


def upgrade() -> None:
    # created from hub/db_dispatch.py; a later change to those tables goes into a new revision
    # that alters them (and db_dispatch.py then describes the newest shape)
    tables = db_dispatch.define(sa.MetaData(), with_stats_index=False)
    bind = op.get_bind()
    for name in TABLES:
        tables[name].create(bind)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
