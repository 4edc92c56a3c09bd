"""Bulk rows straight into the billing database, for benchmarks that need thousands of accounts."""

from sqlalchemy import create_engine, insert
from sqlmodel import SQLModel

from billing.db import sync_url

Rows = list[tuple[type[SQLModel], list[SQLModel]]]


def bulk_insert(database_url: str, rows: Rows) -> None:
    """Insert each table's models in one statement, tables in the order given (parents first)."""
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        for table, models in rows:  # core inserts in bulk; the models fill in their defaults
            conn.execute(insert(table), [model.model_dump() for model in models])
    engine.dispose()
