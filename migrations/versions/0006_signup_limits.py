"""signups: rate limits shared by every API process, one claimed row per code SMS, and what verified
a signup (the keyed hash of its code or password, the CMMS's password until the account takes it)

Revision ID: 0006_signup_limits
Revises: 0005_sms_messages
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0006_signup_limits"
down_revision: str | None = "0005_sms_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rate_limit_hit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_limit_hit_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_rate_limit_hit_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "signup_send",
        sa.Column("signup_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signup_id", "seq"),
    )
    with op.batch_alter_table("signup", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_hmac", sa.String(length=64), nullable=True))
        # Encrypted at rest (billing.encrypted): room for the ciphertext of 512 characters.
        batch_op.add_column(sa.Column("requested_password", sa.String(length=756), nullable=True))
        batch_op.add_column(sa.Column("account_revision", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signup", schema=None) as batch_op:
        batch_op.drop_column("account_revision")
        batch_op.drop_column("requested_password")
        batch_op.drop_column("secret_hmac")
    op.drop_table("signup_send")
    with op.batch_alter_table("rate_limit_hit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limit_hit_expires_at"))
        batch_op.drop_index(batch_op.f("ix_rate_limit_hit_key"))
    op.drop_table("rate_limit_hit")
