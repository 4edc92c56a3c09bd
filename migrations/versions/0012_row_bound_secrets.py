"""row_bound_secrets: every encrypted value is bound to its row as well as its column (format v2)

Values written before were bound to their column only (`v1`), so a database writer could swap two
accounts' passwords undetected. This rewrites each of them as `v2`, under the newest key of
DATABASE_ENCRYPTION_KEYS, and the service reads `v2` only.

Why here rather than in `python -m billing.rotate_keys`: the code that refuses `v1` must never meet one,
or it would have to keep accepting unbound values (and the swap would stay open for them). The
migration runs before the new code serves (`make run`, the image's start), so no such window exists;
the rotation command, which runs beside the service, only ever changes the key. Stop processes of the
old version before migrating: they cannot read `v2`.

Revision ID: 0012_row_bound_secrets
Revises: 0009_portabilling
"""

import base64
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from billing.encrypted import LEGACY_PREFIX, PREFIX, database_keys, reseal, unseal

revision: str = "0012_row_bound_secrets"
down_revision: str | None = "0011_reconciliation_orphans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, primary key, column, the column's purpose as bound into its values), as they are at this revision.
COLUMNS = (
    ("account", "account_id", "sip_password", "account.sip_password"),
    ("orders", "order_id", "requested_password", "orders.requested_password"),
    ("signup", "signup_id", "requested_password", "signup.requested_password"),
)
_BATCH = 1000


def _rewrite(prefix: str, convert: Callable[[str, str, str], str]) -> None:
    """Each value of each column that starts with `prefix`, as `convert(stored, purpose, row key)` has it."""
    connection = op.get_bind()
    for name, key_name, column_name, purpose in COLUMNS:
        # Plain strings: the stored text as the database holds it, not the models' decrypting type.
        key, column = sa.column(key_name, sa.String()), sa.column(column_name, sa.String())
        table = sa.table(name, key, column)
        after = ""
        while True:
            query = sa.select(key, column).where(column.startswith(f"{prefix}:"), key > after)
            rows = connection.execute(query.order_by(key).limit(_BATCH)).all()
            for row, stored in rows:
                connection.execute(sa.update(table).where(key == row).values({column: convert(stored, purpose, row)}))
            if len(rows) < _BATCH:
                break
            after = rows[-1][0]


def _to_row_bound(stored: str, purpose: str, row: str) -> str:
    sealed = reseal(stored, purpose, row)
    assert sealed is not None  # a v1 value is never under the current format
    return sealed


def _to_column_bound(stored: str, purpose: str, row: str) -> str:
    # The old format: the column's name alone as associated data.
    kid, sealed = database_keys().encrypt(unseal(stored, purpose, row).encode(), purpose.encode())
    return f"{LEGACY_PREFIX}:{kid}:{base64.urlsafe_b64encode(sealed).decode()}"


def upgrade() -> None:
    _rewrite(LEGACY_PREFIX, _to_row_bound)


def downgrade() -> None:
    _rewrite(PREFIX, _to_column_bound)
