"""portabilling: the ESPF events received (by i_event) and the PortaBilling accounts as last pushed; an
outbox record's revision takes 64 bits (a customer's, beside PortaBilling, is an ESPF event's number)

Revision ID: 0009_portabilling
Revises: 0008_wallet_lots
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0009_portabilling"
down_revision: str | None = "0008_wallet_lots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("revision", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)
    op.create_table(
        "portabilling_event",
        sa.Column("i_event", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("i_account", sa.BigInteger(), nullable=True),
        sa.Column("i_customer", sa.BigInteger(), nullable=True),
        sa.Column("known", sa.Boolean(), nullable=False),
        sa.Column("received_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("i_event"),
    )
    op.create_index("ix_portabilling_event_received_at", "portabilling_event", ["received_at"], unique=False)
    op.create_table(
        "portabilling_account",
        sa.Column("i_account", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cmms_account_id", sa.String(length=64), nullable=True),
        sa.Column("provisioning_state", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("messaging_state", sa.String(length=16), nullable=True),
        sa.Column("updated_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("i_account"),
    )


def downgrade() -> None:
    op.drop_table("portabilling_account")
    op.drop_index("ix_portabilling_event_received_at", table_name="portabilling_event")
    op.drop_table("portabilling_event")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("revision", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
