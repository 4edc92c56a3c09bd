"""SQLite: sessions that only read (`billing.db.snapshot`) neither wait for the other process's writer
nor hold it up; sessions that may write take the write lock up front, and hold it no longer than
their SQL takes."""

import asyncio
import gc
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from billing.db import SessionMaker, make_engine, make_sessionmaker, snapshot, transaction
from tests.support.database import sqlite_database


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


@pytest.fixture
async def sessions(database: tuple[str, Path]) -> AsyncIterator[SessionMaker]:
    """This process's sessions on the file, as the API or the worker make them."""
    engine = make_engine(database[0])
    yield make_sessionmaker(engine)
    await engine.dispose()


@asynccontextmanager
async def loop_turns() -> AsyncIterator[list[int]]:
    """Counts the event loop's turns while it is open: a task that does nothing but yield."""
    turns = [0]

    async def tick() -> None:
        while True:
            await asyncio.sleep(0)
            turns[0] += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield turns
    finally:
        ticker.cancel()


async def test_a_read_only_session_reads_while_another_process_writes(
    sessions: SessionMaker, other_writer: sqlite3.Connection
) -> None:
    async with snapshot(sessions) as session:
        count = (await session.exec(text("SELECT count(*) FROM customer"))).one()  # type: ignore[call-overload]
    assert tuple(count) == (0,)

    # A session that may write waits for the lock, so it is still waiting here, and the event loop
    # keeps turning meanwhile (a blocked loop would not have turned at all).
    async def write() -> None:
        async with transaction(sessions) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]

    async with loop_turns() as turns:
        waiting = asyncio.create_task(write())
        await asyncio.sleep(1.0)
        assert not waiting.done()
        assert turns[0] > 100
    other_writer.execute("ROLLBACK")
    other_writer.execute("BEGIN")  # the fixture's teardown rolls this back
    await asyncio.wait_for(waiting, 10)


async def test_no_garbage_collection_while_holding_the_write_lock(sessions: SessionMaker) -> None:
    """A collection's pause inside a write transaction would hold up the other process's writes: it
    waits until the lock is released, whether the transaction commits or fails."""
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


async def test_a_write_transaction_holds_the_lock_only_while_its_sql_runs(sessions: SessionMaker) -> None:
    """From BEGIN IMMEDIATE to COMMIT, nothing else on the event loop runs: however busy the process is,
    the other process waits for the SQL alone, not for turns of this process's loop."""
    async with loop_turns() as turns:
        async with transaction(sessions) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            began_at = turns[0]
            for n in range(20):
                await session.exec(text(f"SELECT {n}"))  # type: ignore[call-overload]
            await session.commit()
            assert turns[0] == began_at
        await asyncio.sleep(0.01)
        assert turns[0] > began_at  # the counter does count
