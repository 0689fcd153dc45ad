"""Live views from the hub, recorded (视频调阅登记); event clips uploaded by devices; the event an
upload_clip command names.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "view_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("camera", sa.String(32), nullable=False),
        sa.Column("page", sa.String(16), nullable=False),
        sa.Column("quality", sa.String(8), nullable=False),
        sa.Column("talk", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.String(200)),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200)),
    )
    op.create_index("ix_view_sessions_device", "view_sessions", ["device_id", "ended_at"])
    op.create_index("ix_view_sessions_started", "view_sessions", ["started_at"])
    op.create_table(
        "clips",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("requested_by", sa.String(64)),
        sa.Column("bytes_total", sa.BigInteger),
        sa.Column("bytes_received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sha256", sa.String(64)),
        sa.Column("completed_at", sa.Float),
        sa.Column("path", sa.String(200)),
        sa.Column("error", sa.String(200)),
    )
    op.create_index("ix_clips_state", "clips", ["state", "completed_at"])
    with op.batch_alter_table("device_commands") as batch:
        batch.add_column(sa.Column("event_id", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("device_commands") as batch:
        batch.drop_column("event_id")
    op.drop_table("clips")
    op.drop_table("view_sessions")
