"""one IMEI, one live account and one order in flight: partial unique indexes on account(imei) (status
not terminated) and orders(imei) (status accepted or provisioning), so that concurrent requests cannot
both take an IMEI

Revision ID: 0004_live_imei_unique
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_live_imei_unique"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported from the models: a migration keeps the schema of its day.
_INDEXES = (
    ("ix_account_live_imei", "account", "status <> 'terminated'"),
    ("ix_orders_open_imei", "orders", "status IN ('accepted', 'provisioning')"),
)


def upgrade() -> None:
    for name, table, condition in _INDEXES:
        op.create_index(
            name,
            table,
            ["imei"],
            unique=True,
            postgresql_where=sa.text(condition),
            sqlite_where=sa.text(condition),
        )


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
