"""wallet lots: each top-up's units keep their own expiry; the ledger names expiries; the CMMS's confirmed
messaging state moves from the wallet to the account (an account without a wallet is suspended too); an
order may hold a wallet opened before its account exists

Existing wallets become one lot holding their balance with the wallet's expiry; their opening movements
become top-ups.

Revision ID: 0008_wallet_lots
Revises: 0007_audit
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0008_wallet_lots"
down_revision: str | None = "0007_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_lot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("expires_at", billing.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.account_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_wallet_lot_wallet", "wallet_lot", ["account_id", "service"], unique=False)
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("messaging_state", sa.String(length=16), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_wallet", sa.JSON(), nullable=True))

    op.execute(
        "INSERT INTO wallet_lot (account_id, service, remaining, expires_at, created_at) "
        "SELECT account_id, service, balance, expires_at, updated_at FROM wallet WHERE balance > 0"
    )
    op.execute(
        "UPDATE account SET messaging_state = (SELECT w.messaging_state FROM wallet w "
        "WHERE w.account_id = account.account_id AND w.service = 'messaging')"
    )
    op.execute("UPDATE wallet_movement SET kind = 'top_up' WHERE kind = 'open'")
    with op.batch_alter_table("wallet", schema=None) as batch_op:
        batch_op.drop_column("messaging_state")


def downgrade() -> None:
    with op.batch_alter_table("wallet", schema=None) as batch_op:
        batch_op.add_column(sa.Column("messaging_state", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE wallet SET messaging_state = (SELECT a.messaging_state FROM account a "
        "WHERE a.account_id = wallet.account_id) WHERE service = 'messaging'"
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("held_wallet")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("messaging_state")
    op.drop_index("ix_wallet_lot_wallet", table_name="wallet_lot")
    op.drop_table("wallet_lot")
