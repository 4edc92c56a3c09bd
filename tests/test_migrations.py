"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import billing.models  # noqa: F401  (registers the tables)
from billing.db import sync_url
from tests.support.database import migrate, postgres_database


def _differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    return list(diff)


def _seeded_fields(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        names = {row[0] for row in connection.execute(text("SELECT name FROM custom_field_definition"))}
    engine.dispose()
    return names


def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    migrate(url)
    assert _differences(url) == []
    assert _seeded_fields(url) == {"profileName", "domain"}
    migrate(url)  # running again is a no-op, as on every `make run`


def test_postgresql_schema_matches_the_models() -> None:
    with postgres_database() as url:
        migrate(url)
        assert _differences(url) == []
        assert _seeded_fields(url) == {"profileName", "domain"}
