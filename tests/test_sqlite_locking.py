"""SQLite: sessions that only read (`billing.db.snapshot`) neither wait for the other process's writer
nor hold it up; sessions that may write take the write lock up front."""

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from billing.db import make_engine, make_sessionmaker, snapshot, transaction
from tests.conftest import sqlite_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url = sqlite_database(tmp_path)
    path = tmp_path / "billing.sqlite3"
    with sqlite3.connect(path) as first:  # WAL, as the API or the worker leave it on their first connection
        first.execute("PRAGMA journal_mode=WAL")
    yield url, path


@pytest.fixture
def other_writer(database: tuple[str, Path]) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the write lock (an open write transaction)."""
    connection = sqlite3.connect(database[1], isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    yield connection
    connection.execute("ROLLBACK")
    connection.close()


async def test_a_read_only_session_reads_while_another_process_writes(
    database: tuple[str, Path], other_writer: sqlite3.Connection
) -> None:
    engine = make_engine(database[0])
    sessions = make_sessionmaker(engine)
    try:
        async with snapshot(sessions) as session:
            count = (await session.exec(text("SELECT count(*) FROM customer"))).one()  # type: ignore[call-overload]
        assert tuple(count) == (0,)

        # A session that may write waits for the lock (busy_timeout), so it is still waiting here.
        async def write() -> None:
            async with transaction(sessions) as session:
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]

        waiting = asyncio.create_task(write())
        await asyncio.sleep(1.0)
        assert not waiting.done()
        other_writer.execute("ROLLBACK")
        other_writer.execute("BEGIN")  # the fixture's teardown rolls this back
        await asyncio.wait_for(waiting, 10)
    finally:
        await engine.dispose()


async def test_no_garbage_collection_while_holding_the_write_lock(database: tuple[str, Path]) -> None:
    """A collection's pause inside a write transaction would hold up the other process's writes: it
    waits until the lock is released, whether the transaction commits or fails."""
    engine = make_engine(database[0])
    sessions = make_sessionmaker(engine)
    try:
        async with snapshot(sessions) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            assert gc.isenabled()  # a reader holds no lock
        async with transaction(sessions) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            assert not gc.isenabled()
        assert gc.isenabled()

        with pytest.raises(RuntimeError):
            async with transaction(sessions) as session:
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
                assert not gc.isenabled()
                raise RuntimeError("the change fails")
        assert gc.isenabled()
    finally:
        gc.enable()
        await engine.dispose()
