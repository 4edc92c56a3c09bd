"""reconciliation orphans: the CMMS records without an account that a reconciliation found, kept by run
until it deletes them (or, held, until an operator confirms)

Revision ID: 0011_reconciliation_orphans
Revises: 0010_order_key_name
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0011_reconciliation_orphans"
down_revision: str | None = "0010_order_key_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_orphan",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id"),
    )
    op.create_index("ix_reconciliation_orphan_recorded_at", "reconciliation_orphan", ["recorded_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_reconciliation_orphan_recorded_at", table_name="reconciliation_orphan")
    op.drop_table("reconciliation_orphan")
