"""Billing databases for tests: a migrated SQLite file, or a fresh PostgreSQL database."""

import os
import secrets
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]

# The machine's PostgreSQL (trust auth); a test database is created and dropped around each use.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def migrate(database_url: str, revision: str = "head") -> None:
    """Apply the project's Alembic migrations, exactly as `make run` does."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.cmd_opts = Namespace(x=[f"url={database_url}"])
    command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    """Undo the project's Alembic migrations after `revision`."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.cmd_opts = Namespace(x=[f"url={database_url}"])
    command.downgrade(config, revision)


@contextmanager
def postgres_database(*, icu_locale: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database (collating by `icu_locale` when given, e.g. `en-US`); yields its
    SQLAlchemy URL and drops it afterwards."""
    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"cmms_test_{secrets.token_hex(4)}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    collation = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'" if icu_locale else ""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{collation}')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A new, migrated billing database of `backend` ("sqlite" under `directory`, or "postgresql")."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'billing.sqlite3'}"
        migrate(url)
        yield url
        return
    with postgres_database() as url:
        migrate(url)
        yield url


def sqlite_database(directory: Path) -> str:
    """A migrated SQLite billing database in `directory`; yields its URL."""
    url = f"sqlite:///{directory / 'billing.sqlite3'}"
    migrate(url)
    return url
