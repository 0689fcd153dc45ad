"""What a device says about itself in its birth message (kind, grid, location), kept beside the
registry's own values: the registry decides, a difference is shown.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("reported", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("reported")
