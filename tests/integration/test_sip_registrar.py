"""The SIP registrar's subscriber table (clients.sip_registrar) on a real SQLite file and PostgreSQL:
Kamailio's layout, made when missing (however often, however many at once), one row per username,
digests only, and failures that are retryable and show no secret."""

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from clients.http import Unavailable
from clients.sip_registrar import SUBSCRIBER_TABLE_VERSION, RegistrarUnavailable, SipRegistrar, kamailio_db_url
from tests.support.database import postgres_database
from tests.support.net import free_port


@pytest.fixture(params=["sqlite", "postgresql"])
def registrar_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sub' / 'sip.sqlite3'}"
        return
    with postgres_database() as url:
        yield url


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def test_the_schema_is_kamailios_and_made_once_however_often_asked(registrar_url: str) -> None:
    registrars = [SipRegistrar(registrar_url) for _ in range(3)]
    await asyncio.gather(*(registrar.ensure_schema() for registrar in registrars))
    await registrars[0].ensure_schema()
    for registrar in registrars:
        await registrar.__aexit__(None, None, None)
    url = make_url(registrar_url)
    query = "SELECT table_name, table_version FROM version ORDER BY table_name"
    if url.get_backend_name() == "sqlite":
        import sqlite3

        with sqlite3.connect(url.database or "") as conn:
            versions = conn.execute(query).fetchall()
            columns = [row[1] for row in conn.execute("PRAGMA table_info(subscriber)")]
    else:
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            versions = conn.execute(query).fetchall()
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'subscriber'"
                    " ORDER BY ordinal_position"
                )
            ]
    assert versions == [("subscriber", SUBSCRIBER_TABLE_VERSION), ("version", 1)]
    assert columns == ["id", "username", "domain", "password", "ha1", "ha1b"]


async def test_one_row_per_subscriber_with_digests_only(registrar_url: str) -> None:
    password = "Plain-Secret-0099"
    async with SipRegistrar(registrar_url) as registrar:
        await registrar.put("acct-1", "old.example", SecretStr(password))
        await registrar.put("acct-1", "new.example", SecretStr(password))  # a domain change
        assert await registrar.subscribers("acct-1") == [
            {
                "domain": "new.example",
                "password": "",
                "ha1": _md5(f"acct-1:new.example:{password}"),
                "ha1b": _md5(f"acct-1@new.example:new.example:{password}"),
            }
        ]
        # An id change: the row under the old id goes in the same write.
        await registrar.put("acct-2", "new.example", SecretStr(password), retired=["acct-1"])
        assert await registrar.subscribers("acct-1") == []
        assert [row["domain"] for row in await registrar.subscribers("acct-2")] == ["new.example"]
        await registrar.remove(["acct-2", "never-there"])
        assert await registrar.subscribers("acct-2") == []


async def test_an_unreachable_registrar_is_retryable_and_shows_no_secret(tmp_path: Path) -> None:
    password = "Plain-Secret-0100"
    for url in (
        f"postgresql+psycopg://postgres:db-Secret-77@127.0.0.1:{free_port()}/sip",
        f"sqlite:///{tmp_path}",  # a directory, not a database file
    ):
        async with SipRegistrar(url) as registrar:
            with pytest.raises(RegistrarUnavailable) as failed:
                await registrar.put("acct-1", "d.example", SecretStr(password))
        assert isinstance(failed.value, Unavailable)
        message = str(failed.value)
        assert message.startswith("SIP registrar database unavailable: ")
        for secret in (password, "db-Secret-77", _md5(f"acct-1:d.example:{password}")):
            assert secret not in message


def test_kamailio_names_the_same_database() -> None:
    assert kamailio_db_url("sqlite:///var/sip.sqlite3") == f"sqlite://{Path('var/sip.sqlite3').resolve()}"
    assert kamailio_db_url("postgresql+psycopg://kamailio:pw@db:5433/sip") == "postgres://kamailio:pw@db:5433/sip"
    assert kamailio_db_url("postgresql://db/sip") == "postgres://db:5432/sip"


def _insert_row(registrar_url: str, username: str, domain: str) -> None:
    """A row written by hand beside the service's (a second domain for one username)."""
    url = make_url(registrar_url)
    statement = "INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES ('{}', '{}', 'x', 'y')"
    if url.get_backend_name() == "sqlite":
        import sqlite3

        with sqlite3.connect(url.database or "") as conn:
            conn.execute(statement.format(username, domain))
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute(statement.format(username, domain).encode())


async def test_rows_are_paged_by_username_in_byte_order_every_row_of_the_last_one_included(
    registrar_url: str,
) -> None:
    # Byte order, as the CMMS lists its records: capitals before small letters, "-" before digits.
    async with SipRegistrar(registrar_url) as registrar:
        for username in ["b", "a1", "a-10", "a-1", "B-2"]:
            await registrar.put(username, "d.example", SecretStr("Plain-Secret-0101"))
        # A page never splits a username's rows.
        _insert_row(registrar_url, "a-1", "e.example")
        rows, complete = await registrar.page(None, None, 10)
        assert complete
        assert [(row.username, row.domain) for row in rows] == [
            ("B-2", "d.example"),
            ("a-1", "d.example"),
            ("a-1", "e.example"),
            ("a-10", "d.example"),
            ("a1", "d.example"),
            ("b", "d.example"),
        ]
        rows, complete = await registrar.page("B-2", "a1", 10)
        assert complete and [row.username for row in rows] == ["a-1", "a-1", "a-10", "a1"]
        # Cut short: the range goes on after the last username, whose rows are all there.
        rows, complete = await registrar.page("B-2", None, 1)
        assert not complete and [(row.username, row.domain) for row in rows] == [
            ("a-1", "d.example"),
            ("a-1", "e.example"),
        ]
