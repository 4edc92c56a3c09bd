"""sms_message: every code SMS of a signup and what its delivery reports said

Revision ID: 0005_sms_messages
Revises: 0004_live_imei_unique
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0005_sms_messages"
down_revision: str | None = "0004_live_imei_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_message",
        sa.Column("report_token_hash", sa.String(length=64), nullable=False),
        sa.Column("signup_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("sent_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("report_token_hash"),
    )
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_message_signup_id"), ["signup_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_message_signup_id"))
    op.drop_table("sms_message")
