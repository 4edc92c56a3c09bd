"""Alembic environment: migrates the database named by the settings (or by `-x url=...`)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import billing.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from billing.db import ensure_sqlite_dir, sync_url
from billing.encrypted import use_key_ring
from core.settings import get_settings

database = get_settings().database
# A data migration reads and writes encrypted columns with the settings' key ring.
use_key_ring(database.key_ring)
database_url = context.get_x_argument(as_dictionary=True).get("url") or database.url
ensure_sqlite_dir(database_url)
engine = create_engine(sync_url(database_url))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
