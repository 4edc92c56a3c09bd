"""The SIP registrar's subscriber table: what a Kamailio (module `auth_db`) authenticates REGISTERs with.

The table is Kamailio's own `subscriber` (5.6, table version 7: `id`, `username`, `domain`, `password`,
`ha1`, `ha1b`), in a database of its own (not billing's) that Kamailio reads: a SQLite file or PostgreSQL.
Its schema is created here when missing, as Kamailio's `auth_db-create.sql` and `standard-create.sql`
create it (Kamailio refuses a table whose `version` row it does not find). The plain password is never
stored: `password` stays empty, Kamailio runs with `calculate_ha1 0` and reads the digests

    ha1  = md5(username:domain:password)
    ha1b = md5(username@domain:domain:password)

(RFC 2617's H(A1), the realm being the domain; https://www.kamailio.org/docs/modules/5.6.x/modules/auth_db.html).
A subscriber is one row per username: a write replaces every row the username (and the usernames it
retires) had, whatever their domain, in one transaction, so Kamailio never sees the old and the new
credentials both valid, nor a moment without either when only the domain changes.

Failures are `RegistrarUnavailable` (retryable, a kind of `clients.http.Unavailable`); their messages
carry the database's words only, never a statement's parameters (the digests) nor a password.
"""

import hashlib
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from pydantic import SecretStr
from sqlalchemy import bindparam, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from clients.http import REASON_MAX, Unavailable

# Kamailio 5.6's table versions (`version` rows), checked by its modules at start.
SUBSCRIBER_TABLE_VERSION = 7
VERSION_TABLE_VERSION = 1

CONNECT_TIMEOUT_SECONDS = 5

_SCHEMA = {
    "sqlite": (
        """CREATE TABLE IF NOT EXISTS version (
            id INTEGER PRIMARY KEY NOT NULL,
            table_name VARCHAR(32) NOT NULL,
            table_version INTEGER DEFAULT 0 NOT NULL,
            CONSTRAINT version_table_name_idx UNIQUE (table_name))""",
        """CREATE TABLE IF NOT EXISTS subscriber (
            id INTEGER PRIMARY KEY NOT NULL,
            username VARCHAR(64) DEFAULT '' NOT NULL,
            domain VARCHAR(64) DEFAULT '' NOT NULL,
            password VARCHAR(64) DEFAULT '' NOT NULL,
            ha1 VARCHAR(128) DEFAULT '' NOT NULL,
            ha1b VARCHAR(128) DEFAULT '' NOT NULL,
            CONSTRAINT subscriber_account_idx UNIQUE (username, domain))""",
        "CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username)",
    ),
    "postgresql": (
        """CREATE TABLE IF NOT EXISTS version (
            id SERIAL PRIMARY KEY NOT NULL,
            table_name VARCHAR(32) NOT NULL,
            table_version INTEGER DEFAULT 0 NOT NULL,
            CONSTRAINT version_table_name_idx UNIQUE (table_name))""",
        """CREATE TABLE IF NOT EXISTS subscriber (
            id SERIAL PRIMARY KEY NOT NULL,
            username VARCHAR(64) DEFAULT '' NOT NULL,
            domain VARCHAR(64) DEFAULT '' NOT NULL,
            password VARCHAR(64) DEFAULT '' NOT NULL,
            ha1 VARCHAR(128) DEFAULT '' NOT NULL,
            ha1b VARCHAR(128) DEFAULT '' NOT NULL,
            CONSTRAINT subscriber_account_idx UNIQUE (username, domain))""",
        "CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username)",
        # Reconciliation pages the table in byte order (`COLLATE "C"`), which the index above serves only
        # in a database whose own collation is C; an extra index Kamailio ignores.
        'CREATE INDEX IF NOT EXISTS subscriber_username_bytes_idx ON subscriber (username COLLATE "C")',
    ),
}
# The advisory lock the schema is made under on PostgreSQL (any number of our own).
_SCHEMA_LOCK = 0x5150_5245_4749
_VERSIONS = {"version": VERSION_TABLE_VERSION, "subscriber": SUBSCRIBER_TABLE_VERSION}


class Subscriber(NamedTuple):
    """One row of the subscriber table, as reconciliation compares it (digests only)."""

    username: str
    domain: str
    ha1: str
    ha1b: str


class RegistrarUnavailable(Unavailable):
    """The registrar's database cannot be written now (down, refusing us, locked): try again."""


def ha1(username: str, domain: str, password: str) -> str:
    """Kamailio's `ha1`: md5(username:realm:password), the realm being the subscriber's domain."""
    return hashlib.md5(f"{username}:{domain}:{password}".encode(), usedforsecurity=False).hexdigest()


def ha1b(username: str, domain: str, password: str) -> str:
    """Kamailio's `ha1b`, for phones that send `username@domain` as their digest user name."""
    return hashlib.md5(f"{username}@{domain}:{domain}:{password}".encode(), usedforsecurity=False).hexdigest()


def async_url(database_url: str) -> str:
    """The SQLAlchemy URL with the async driver (`sqlite:///…` → aiosqlite, `postgresql://…` → psycopg)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"SIP_DATABASE_URL: a sqlite:/// or postgresql:// URL is needed, not {url.drivername}://")


def kamailio_db_url(database_url: str) -> str:
    """The same database as Kamailio's db_sqlite or db_postgres module names it (`sqlite:///abs/path`,
    `postgres://user:password@host:port/db`)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite://{Path(url.database or '').resolve()}"
    if url.get_backend_name() == "postgresql":
        auth = url.username or ""
        if url.password:
            auth += f":{url.password}"
        host = f"{url.host or '127.0.0.1'}:{url.port or 5432}"
        return f"postgres://{auth}{'@' if auth else ''}{host}/{url.database}"
    raise ValueError(f"SIP_DATABASE_URL: a sqlite:/// or postgresql:// URL is needed, not {url.drivername}://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: Kamailio reads while we write. A write waits a little for Kamailio's reads.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class SipRegistrar:
    """The subscriber table of one registrar database; `async with` disposes of its connections."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._backend = url.get_backend_name()
        if self._backend == "sqlite" and url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A database host that does not answer fails the try within the provisioning step's time, not after it.
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if self._backend == "postgresql" else {}
        self._engine: AsyncEngine = create_async_engine(
            async_url(database_url), pool_pre_ping=True, connect_args=connect_args
        )
        if self._backend == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        self._schema_ready = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._engine.dispose()

    async def ensure_schema(self) -> None:
        """Create the `version` and `subscriber` tables and their version rows when missing (idempotent)."""
        try:
            async with self._engine.begin() as conn:
                if self._backend == "postgresql":
                    # Workers starting together: CREATE … IF NOT EXISTS races on PostgreSQL's catalog.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                for statement in _SCHEMA[self._backend]:
                    await conn.execute(text(statement))
                for table, version in _VERSIONS.items():
                    await conn.execute(
                        text(
                            "INSERT INTO version (table_name, table_version) SELECT :table, :version"
                            " WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = :existing)"
                        ),
                        {"table": table, "version": version, "existing": table},
                    )
        except SQLAlchemyError as err:
            raise _unavailable(err) from None
        self._schema_ready = True

    async def put(self, username: str, domain: str, password: SecretStr, retired: Iterable[str] = ()) -> None:
        """Hold `username`@`domain` with `password` (its digests): the rows of `username` under any other
        domain, and those of the `retired` usernames, go in the same transaction."""
        secret = password.get_secret_value()
        row = {"username": username, "domain": domain, "ha1": ha1(username, domain, secret)}
        row["ha1b"] = ha1b(username, domain, secret)
        async with self._transaction() as conn:
            await self._delete(conn, [username, *retired])
            await conn.execute(
                text(
                    "INSERT INTO subscriber (username, domain, password, ha1, ha1b)"
                    " VALUES (:username, :domain, '', :ha1, :ha1b)"
                ),
                row,
            )

    async def remove(self, usernames: Iterable[str]) -> None:
        """No row for any of `usernames` (a blocked or terminated account): REGISTERs as them are refused."""
        async with self._transaction() as conn:
            await self._delete(conn, list(usernames))

    async def subscribers(self, username: str) -> list[dict[str, str]]:
        """The rows `username` has (for tests and operators): domain, password, ha1, ha1b."""
        async with self._transaction() as conn:
            result = await conn.execute(
                text("SELECT domain, password, ha1, ha1b FROM subscriber WHERE username = :username"),
                {"username": username},
            )
            return [dict(row._mapping) for row in result]

    async def page(self, after: str | None, upto: str | None, limit: int) -> tuple[list[Subscriber], bool]:
        """The rows whose username is after `after` and not after `upto` (None: no bound), by username in
        byte order (as the CMMS and billing's reconciliation pages order account ids), at most about
        `limit`: every row of the last username is included. The flag says whether they are all the rows
        in that range (False: the range goes on after the last username)."""
        order = 'username COLLATE "C"' if self._backend == "postgresql" else "username"
        bounds: list[str] = []
        values: dict[str, str | int] = {"limit": limit}
        if after is not None:
            bounds.append(f"{order} > :after")
            values["after"] = after
        if upto is not None:
            bounds.append(f"{order} <= :upto")
            values["upto"] = upto
        where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
        columns = "SELECT username, domain, ha1, ha1b FROM subscriber"
        async with self._transaction() as conn:
            result = await conn.execute(text(f"{columns}{where} ORDER BY {order}, domain LIMIT :limit"), values)
            rows = [Subscriber(*row) for row in result]
            if len(rows) < limit:
                return rows, True
            last = rows[-1].username
            # The last username's rows all, even those under a domain the limit cut off.
            result = await conn.execute(text(f"{columns} WHERE username = :last ORDER BY domain"), {"last": last})
            rows = [row for row in rows if row.username != last] + [Subscriber(*row) for row in result]
            return rows, False

    async def _delete(self, conn: AsyncConnection, usernames: list[str]) -> None:
        if usernames:
            statement = text("DELETE FROM subscriber WHERE username IN :usernames").bindparams(
                bindparam("usernames", expanding=True)
            )
            await conn.execute(statement, {"usernames": sorted(set(usernames))})

    def _transaction(self) -> "_Transaction":
        return _Transaction(self)


class _Transaction:
    """One transaction on the registrar's database (the schema made first), its failures as `RegistrarUnavailable`."""

    def __init__(self, registrar: SipRegistrar) -> None:
        self._registrar = registrar
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        registrar = self._registrar
        if not registrar._schema_ready:
            await registrar.ensure_schema()
        try:
            self._conn = await registrar._engine.connect()
            await self._conn.begin()
        except SQLAlchemyError as err:
            if self._conn is not None:
                await self._conn.close()
            raise _unavailable(err) from None
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn = self._conn
        assert conn is not None
        try:
            if exc is None:
                await conn.commit()
            else:
                await conn.rollback()
        except SQLAlchemyError as err:
            if exc is None:
                raise _unavailable(err) from None
        finally:
            await conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise _unavailable(exc) from None


def _unavailable(err: SQLAlchemyError) -> RegistrarUnavailable:
    """The database's own words (never the statement or its parameters: the digests), on one line."""
    if isinstance(err, DBAPIError):
        words = " ".join(str(err.orig).split())[:REASON_MAX] or type(err.orig).__name__
    else:
        words = type(err).__name__
    return RegistrarUnavailable(f"SIP registrar database unavailable: {words}")
