"""Durable hub -> device commands (an outbox acked by the device), notification delivery and
acknowledgement, and webhook deliveries.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "device_commands",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("alarm_id", sa.String(36)),
        sa.Column("by", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float),
        sa.Column("sent_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_sent_at", sa.Float),
        sa.Column("acked_at", sa.Float),
    )
    op.create_index("ix_device_commands_due", "device_commands", ["due_at"])
    op.create_index("ix_device_commands_device", "device_commands", ["device_id", "acked_at"])
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("delivered_at", sa.Float))
        batch.add_column(sa.Column("acked_at", sa.Float))
        batch.add_column(sa.Column("acked_by", sa.String(64)))
    op.create_index("ix_notifications_ticket", "notifications", ["ticket_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.Integer, sa.ForeignKey("notifications.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("webhook", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", sa.Float),
        sa.Column("delivered_at", sa.Float),
        sa.Column("failed_at", sa.Float),
        sa.Column("last_error", sa.String(200)),
    )
    op.create_index("ix_webhook_deliveries_next", "webhook_deliveries", ["next_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_notifications_ticket", "notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("acked_by")
        batch.drop_column("acked_at")
        batch.drop_column("delivered_at")
    op.drop_table("device_commands")
