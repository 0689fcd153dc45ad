"""Users are scoped to an area or grid subtree (NULL: the whole county).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("scope_code", sa.String(19)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("scope_code")
