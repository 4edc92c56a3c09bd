"""imports: bulk imports (their answer, kept for a repeat of the same file) and the accounts each created

Revision ID: 0013_imports
Revises: 0012_row_bound_secrets
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.models

revision: str = "0013_imports"
down_revision: str | None = "0012_row_bound_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("import_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.JSON(), nullable=False),
        sa.Column("created_at", billing.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("import_id"),
    )
    op.create_table(
        "import_rows",
        sa.Column("import_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("in_cmms", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["imports.import_id"]),
        sa.PrimaryKeyConstraint("import_id", "account_id"),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_table("imports")
