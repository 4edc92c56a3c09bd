"""Telling which rule of the database a failed write broke, on PostgreSQL and on SQLite."""

from sqlalchemy.exc import IntegrityError

from billing.models import LIVE_ACCOUNT_IMEI, OPEN_ORDER_IMEI

# PostgreSQL names the violated index; SQLite names its columns.
_IMEI_RULES = frozenset(
    {
        LIVE_ACCOUNT_IMEI,
        OPEN_ORDER_IMEI,
        "UNIQUE constraint failed: account.imei",
        "UNIQUE constraint failed: orders.imei",
    }
)


def broken_rule(err: IntegrityError) -> str:
    """The constraint's name (PostgreSQL) or the driver's one-line message (SQLite): never the values."""
    diag = getattr(err.orig, "diag", None)
    name = getattr(diag, "constraint_name", None) if diag is not None else None
    return name or str(err.orig).splitlines()[0]


def imei_taken(err: IntegrityError) -> bool:
    """Whether the write gave an IMEI to a second live account, or to a second order in flight."""
    return broken_rule(err) in _IMEI_RULES
