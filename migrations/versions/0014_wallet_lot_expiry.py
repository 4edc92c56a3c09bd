"""wallet_lot_expiry: an index on a lot's expiry, for the wake sweep's query of the accounts due soon

Revision ID: 0014_wallet_lot_expiry
Revises: 0013_imports
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_wallet_lot_expiry"
down_revision: str | None = "0013_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_wallet_lot_expires_at", "wallet_lot", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_wallet_lot_expires_at", table_name="wallet_lot")
