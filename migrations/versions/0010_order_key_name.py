"""orders: the name of the API key that sent each order (`name@key:website`), so that a named website key
reads and lists only its own; existing orders keep none (admin and unnamed keys read them)

Revision ID: 0010_order_key_name
Revises: 0009_portabilling
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_order_key_name"
down_revision: str | None = "0009_portabilling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_name", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_orders_key_name_created", ["key_name", "created_at", "order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_key_name_created")
        batch_op.drop_column("key_name")
