"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import base64
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

import billing.models  # noqa: F401  (registers the tables)
from billing.db import sync_url
from billing.encrypted import database_keys
from billing.models import Account, Signup
from tests.support.database import downgrade, migrate, postgres_database


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


def _wallet_before_lots(url: str) -> None:
    """A funded wallet, its CMMS-confirmed state and its opening movement, as the schema before lots held them."""
    engine = create_engine(sync_url(url))
    now = "2026-01-01 00:00:00+00:00"
    statements = [
        f"INSERT INTO customer_class VALUES ('c', 'C', '[]', '{now}')",
        f"INSERT INTO customer (customer_id, name, customer_class_id, custom_fields, revision, created_at, updated_at)"
        f" VALUES ('cu', 'Cu', 'c', '{{}}', 1, '{now}', '{now}')",
        f"INSERT INTO product VALUES ('p', 'P', '{{}}', '{now}')",
        "INSERT INTO account (account_id, customer_id, product_id, sip_password, status, provisioning_state,"
        " service_policies, created_by, revision, created_at, updated_at)"
        f" VALUES ('a', 'cu', 'p', 'x', 'active', 'ok', '{{}}', 'test', 1, '{now}', '{now}')",
        "INSERT INTO wallet (account_id, service, balance, expires_at, messaging_state, created_at, updated_at)"
        f" VALUES ('a', 'messaging', 7, '2030-01-01 00:00:00+00:00', 'active', '{now}', '{now}')",
        "INSERT INTO wallet_movement (account_id, service, kind, amount, balance_after, created_at)"
        f" VALUES ('a', 'messaging', 'open', 7, 7, '{now}')",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def _lots_after(url: str) -> tuple[list[tuple[object, ...]], object, list[str]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        lots = [tuple(row) for row in connection.execute(text("SELECT account_id, remaining FROM wallet_lot"))]
        state = connection.execute(text("SELECT messaging_state FROM account")).scalar_one()
        kinds = [row[0] for row in connection.execute(text("SELECT kind FROM wallet_movement"))]
    engine.dispose()
    return lots, state, kinds


def test_existing_wallets_become_one_lot_each_on_both_databases(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    with postgres_database() as postgres_url:
        for url in (sqlite_url, postgres_url):
            migrate(url, "0003")
            _wallet_before_lots(url)
            migrate(url)
            assert _lots_after(url) == ([("a", 7)], "active", ["top_up"])
            assert _differences(url) == []


def _column_bound(plaintext: str, purpose: str) -> str:
    """A secret as stored before rows were bound in (v1: the column's name alone as associated data)."""
    kid, sealed = database_keys().encrypt(plaintext.encode(), purpose.encode())
    return f"v1:{kid}:{base64.urlsafe_b64encode(sealed).decode()}"


def _secrets_before_rows_were_bound(url: str) -> None:
    engine = create_engine(sync_url(url))
    now = "2026-01-01 00:00:00+00:00"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO customer_class VALUES ('c', 'C', '[]', '{now}')"))
        connection.execute(
            text(
                "INSERT INTO customer (customer_id, name, customer_class_id, custom_fields, revision, created_at,"
                f" updated_at) VALUES ('cu', 'Cu', 'c', '{{}}', 1, '{now}', '{now}')"
            )
        )
        connection.execute(text(f"INSERT INTO product VALUES ('p', 'P', '{{}}', '{now}')"))
        for account_id in ("a", "b"):
            connection.execute(
                text(
                    "INSERT INTO account (account_id, customer_id, product_id, sip_password, status,"
                    " provisioning_state, service_policies, created_by, revision, created_at, updated_at)"
                    f" VALUES (:id, 'cu', 'p', :password, 'active', 'ok', '{{}}', 'test', 1, '{now}', '{now}')"
                ),
                {"id": account_id, "password": _column_bound(f"Password-of-{account_id}", "account.sip_password")},
            )
        connection.execute(
            text(
                "INSERT INTO signup (signup_id, phone_number, status, expires_at, requested_password, created_at,"
                f" updated_at) VALUES ('s', '+4915112345678', 'pending', '{now}', :password, '{now}', '{now}')"
            ),
            {"password": _column_bound("Issued-by-the-CMMS", "signup.requested_password")},
        )
    engine.dispose()


def _stored_secrets(url: str) -> list[str]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        query = "SELECT sip_password FROM account UNION ALL SELECT requested_password FROM signup"
        stored = [row[0] for row in connection.execute(text(query))]
    engine.dispose()
    return stored


def test_secrets_stored_before_are_bound_to_their_rows_on_both_databases(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    with postgres_database() as postgres_url:
        for url in (sqlite_url, postgres_url):
            migrate(url, "0009_portabilling")
            _secrets_before_rows_were_bound(url)
            migrate(url)
            stored = _stored_secrets(url)
            assert len(stored) == 3 and all(value.startswith("v2:") for value in stored)
            engine = create_engine(sync_url(url))
            with Session(engine) as session:
                assert session.get_one(Account, "a").sip_password == "Password-of-a"
                assert session.get_one(Account, "b").sip_password == "Password-of-b"
                assert session.get_one(Signup, "s").requested_password == "Issued-by-the-CMMS"
            engine.dispose()
            downgrade(url, "0009_portabilling")  # and back: the column-bound values again
            assert all(value.startswith("v1:") for value in _stored_secrets(url))
            migrate(url)
