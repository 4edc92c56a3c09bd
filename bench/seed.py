"""Bulk rows straight into the billing database, for benchmarks that need thousands of accounts."""

from sqlalchemy import create_engine, insert
from sqlmodel import SQLModel

from billing.db import sync_url
from billing.encrypted import bind_rows, use_key_ring
from billing.models import Customer, CustomerClass, Product
from core.settings import DatabaseSettings

Rows = list[tuple[type[SQLModel], list[SQLModel]]]


def bulk_insert(database: DatabaseSettings, rows: Rows) -> None:
    """Insert each table's models in one statement, tables in the order given (parents first); encrypted
    columns with the settings' key ring, which the service's processes share."""
    use_key_ring(database.key_ring)
    engine = create_engine(sync_url(database.url))
    with engine.begin() as conn:
        for table, models in rows:  # core inserts in bulk; the models fill in their defaults
            # An id left to the database (None) is left out, as PostgreSQL refuses NULL for a serial key.
            # Encrypted columns are bound to their rows here: a Core insert passes by the models' flush.
            conn.execute(
                insert(table),
                [
                    bind_rows(table.__table__, model.model_dump(exclude={"id"} if model_id_unset(model) else None))  # type: ignore[attr-defined]
                    for model in models
                ],
            )
    engine.dispose()


def model_id_unset(model: SQLModel) -> bool:
    return getattr(model, "id", 0) is None


def customer_rows(customer_id: str, product_id: str) -> Rows:
    """What a benchmark's accounts refer to: a class enabling the custom fields, one customer of it with a
    profile, one product (no service policies: no wallet)."""
    return [
        (CustomerClass, [CustomerClass(customer_class_id="bench", name="Bench", custom_fields=["profileName"])]),
        (
            Customer,
            [
                Customer(
                    customer_id=customer_id,
                    name="Bench",
                    customer_class_id="bench",
                    custom_fields={"profileName": "Residential"},
                )
            ],
        ),
        (Product, [Product(product_id=product_id, name="Bench")]),
    ]
