"""Devices keep a Mosquitto-format hash of their MQTT password for `xl-hub broker-config`.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("mqtt_broker_hash", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("mqtt_broker_hash")
