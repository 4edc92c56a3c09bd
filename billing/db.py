"""The billing database engine: async for the API and the worker, sync URLs for Alembic."""

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import sqlite_inline
from billing.encrypted import use_key_ring
from core.settings import DatabaseSettings

SessionMaker = async_sessionmaker[AsyncSession]

# Lock a row to change it, not its key: FOR NO KEY UPDATE on PostgreSQL. Plain FOR UPDATE would also
# block inserts that reference the row (a wallet movement referencing its account) and can deadlock
# with them. SQLite ignores row locks (its transactions take the write lock up front).
FOR_CHANGE: dict[str, Any] = {"key_share": True}


def sync_url(database_url: str) -> str:
    """The URL Alembic uses (a plain driver), from the one in the settings."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return database_url


def async_url(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if url.get_backend_name() == "postgresql":
        # psycopg 3 serves both sync and async engines under the same dialect name.
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return database_url


def ensure_sqlite_dir(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the worker writes. Switching to it may wait for the other process
    # (under the connection's 30 s timeout); after that, in WAL, only BEGIN IMMEDIATE ever waits for
    # it, and `_sqlite_begin` does its own waiting: the busy handler is kept short.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself.
    dbapi_connection.isolation_level = None


# SQLite's busy handler waits this long before a statement reports the lock busy; BEGIN IMMEDIATE then
# tries again itself (see `_sqlite_begin`) for up to _SQLITE_LOCK_WAIT_SECONDS.
_SQLITE_BUSY_TIMEOUT_MS = 2
# A new connection waits this long for a lock until `_sqlite_pragmas` sets the busy timeout (switching
# the file to WAL may wait for the other process).
_SQLITE_CONNECT_TIMEOUT_SECONDS = 30.0
_SQLITE_LOCK_RETRY_SECONDS = 0.002
_SQLITE_LOCK_WAIT_SECONDS = 30.0

# The execution option that marks a session's connection as read-only (see `snapshot`).
_READ_ONLY = "billing_read_only"


def _sqlite_begin(connection: Any) -> None:
    if connection.get_execution_options().get(_READ_ONLY):
        # Read-only: a deferred transaction reads a WAL snapshot and never takes the write lock.
        connection.exec_driver_sql("BEGIN")
        return
    # Take the write lock up front: a deferred transaction that later writes fails at once with
    # SQLITE_BUSY when another process wrote in between, and busy_timeout cannot save it.
    # While the other process holds the lock, try again every couple of milliseconds (SQLite's own
    # busy handler backs off to 100 ms sleeps, and a waiter then misses the gaps between the other's
    # short transactions); the event loop keeps running meanwhile.
    deadline = time.monotonic() + _SQLITE_LOCK_WAIT_SECONDS
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            # No garbage collection while this process holds the write lock: a full collection stops
            # every thread for tens of milliseconds (a hundred and more under load), and the other
            # process's writes would wait that long. The collection runs once the lock is released
            # (`_sqlite_released`), when it holds up no one else.
            gc.disable()
            return
        except OperationalError as err:
            if "locked" not in str(err.orig) or time.monotonic() > deadline:
                raise
        await_only(asyncio.sleep(_SQLITE_LOCK_RETRY_SECONDS))


def _sqlite_released(_dbapi_connection: Any, _record: Any) -> None:
    # The connection is back in the pool: its transaction committed or rolled back, the lock is free.
    gc.enable()


def _sqlite_connector(url: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    # What the dialect would give aiosqlite.connect (the file, URI mode and the like, from the URL).
    parsed = make_url(url)
    args, kwargs = parsed.get_dialect()().create_connect_args(parsed)
    return partial(sqlite_inline.connect, *args, **kwargs, timeout=_SQLITE_CONNECT_TIMEOUT_SECONDS)


def make_engine(database_url: str) -> AsyncEngine:
    ensure_sqlite_dir(database_url)
    url = async_url(database_url)
    if make_url(url).get_backend_name() == "sqlite":
        # One connection a process: its sessions queue in order for it instead of spinning on SQLite's
        # busy handler, and only the API and the worker ever contend for the file's write lock.
        # Its calls are made on the event loop's thread (billing.sqlite_inline): a write transaction
        # holds the file's write lock only as long as its SQL takes.
        engine = create_async_engine(
            url,
            async_creator=_sqlite_connector(url),
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        event.listen(engine.sync_engine, "checkin", _sqlite_released)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def open_billing(database: DatabaseSettings) -> AsyncEngine:
    """The billing database's engine, its key ring handed to the encrypted columns: how the API and the
    worker open billing at start-up."""
    use_key_ring(database.key_ring)
    return make_engine(database.url)


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def snapshot(sessions: SessionMaker) -> AsyncIterator[AsyncSession]:
    """A session that only reads. On SQLite it reads a snapshot without the write lock, so it neither
    waits for the other process's writer nor holds it up (a write in it fails: use `transaction`)."""
    async with sessions() as session:
        await session.connection(execution_options={_READ_ONLY: True})
        yield session


@asynccontextmanager
async def transaction(sessions: SessionMaker) -> AsyncIterator[AsyncSession]:
    """A session whose work commits on success and rolls back on any error."""
    async with sessions() as session, session.begin():
        yield session


def insert_or(
    session: AsyncSession, table: Any, values: dict[str, Any], *, key: str, update: dict[str, Any] | None
) -> Any:
    """One `INSERT … ON CONFLICT (key) DO UPDATE SET update` (`DO NOTHING` when `update` is None), on
    SQLite or PostgreSQL: one statement where a read and a write would hold SQLite's write lock for two
    round trips. With `.returning(…)` it returns no row when it did nothing."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(table).values(**values)
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=[key])
    return statement.on_conflict_do_update(index_elements=[key], set_=update)
