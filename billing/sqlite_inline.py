"""SQLite calls made on the event loop's own thread, for the async engine (see `billing.db.make_engine`).

aiosqlite runs every call on a thread of its own and hands the result back through the event loop:
each statement of a transaction then waits for a full turn of a loop that is also running the
worker's workflows and activities, milliseconds each under load, and SQLite's one write lock is held
all that while, so the other process (the API behind a `POST /v1/orders`, say) waits for it. An
SQLite statement itself takes microseconds: made on the loop's thread, a write transaction runs
straight through, and the lock is held only as long as the SQL takes. Waiting for the other
process's lock blocks the loop for no more than SQLite's busy timeout (2 ms) at a time: then
`BEGIN IMMEDIATE` gives up, and `billing.db` sleeps (asyncio) before trying again.

This keeps aiosqlite's `Connection` (whose interface SQLAlchemy's aiosqlite dialect adapts) and
changes only how a call is carried out: `_execute`, the queue `_tx` that SQLAlchemy also puts calls
on (to set `isolation_level`), and start-up without the thread. Those are aiosqlite's internals,
hence its exact pin in pyproject.toml; tests/integration/test_sqlite_locking.py fails if they change.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite

_Call = tuple[asyncio.Future[Any] | None, Callable[[], Any]]


class _AtOnce:
    """Stands in for aiosqlite's queue of calls to its thread: each call is made as it is put."""

    def put_nowait(self, call: _Call) -> None:
        future, function = call
        try:
            result = function()
        except BaseException as err:  # handed to the caller, as aiosqlite's thread does
            if future is not None:
                future.set_exception(err)
            return
        if future is not None:
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread, with no thread of its own."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _AtOnce()  # type: ignore[assignment]

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # aiosqlite's starts its thread first


async def connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """Open `database` with `sqlite3.connect(database, **kwargs)`, as `aiosqlite.connect` does."""
    return await InlineConnection(lambda: sqlite3.connect(database, **kwargs))
