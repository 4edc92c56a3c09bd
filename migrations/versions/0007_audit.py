"""audit: every edit an operator makes, with who made it and when; customers can be deleted (kept, marked);
orders, accounts and signups indexed in the lists' order (created_at, id)

Revision ID: 0007_audit
Revises: 0006_signup_limits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0007_audit"
down_revision: str | None = "0006_signup_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LIST_ORDER = [
    ("orders", "ix_orders_created", "order_id"),
    ("account", "ix_account_created", "account_id"),
    ("signup", "ix_signup_created", "signup_id"),
]


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_object", "audit", ["object_type", "object_id", "created_at"], unique=False)
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", billing.models.UTCDateTime(timezone=True), nullable=True))
    for table, index, key in _LIST_ORDER:
        op.create_index(index, table, ["created_at", key], unique=False)


def downgrade() -> None:
    for table, index, _ in _LIST_ORDER:
        op.drop_index(index, table_name=table)
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    op.drop_index("ix_audit_object", table_name="audit")
    op.drop_table("audit")
