"""`python -m billing.rotate_keys`: re-encrypt every stored secret under the newest database key.

After a new key is put first in `DATABASE_ENCRYPTION_KEYS` (the old ones kept after it, so both still
decrypt) and every process runs with that key ring, this command rewrites each encrypted value that is
under another key; once it reports none left, the old keys can be removed from the setting.

Online and resumable: it walks each table by primary key in batches (`--batch`), each batch in a
transaction of its own, and writes a value only if it is still the one it read (a compare-and-set),
so the service keeps running meanwhile and a row it changes in between is left to it. Values already
under the newest key are not touched, so running it again (after an interruption, or to catch a
value a process with the old key ring wrote meanwhile) does only what is left. docs/operations.md
has the steps.
"""

import argparse
import asyncio
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, String, Table, bindparam, select, type_coerce, update
from sqlmodel import SQLModel

import billing.models  # noqa: F401  (registers the tables)
from billing.db import SessionMaker, make_sessionmaker, open_billing, snapshot, transaction
from billing.encrypted import PREFIX, database_keys, encrypted_columns, key_id, primary_key, reseal
from core.crypto import DecryptionError, UnknownKeyError
from core.logging import configure_logging
from core.settings import get_settings

log = logging.getLogger("billing.rotate_keys")


@dataclass
class Rotated:
    """What one run did, by column (`table.column`)."""

    rewritten: Counter[str] = field(default_factory=Counter)
    changed_meanwhile: Counter[str] = field(default_factory=Counter)  # written by the service in between
    unreadable: Counter[str] = field(default_factory=Counter)  # under a key not in the ring, or tampered with
    # What is still under another key (or in the old format) after the run, by column and key id.
    remaining: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def done(self) -> bool:
        return not self.remaining


def _encrypted() -> list[tuple[Table, str, str]]:
    """(table, column, purpose) of every encrypted column."""
    return [
        (table, name, column_type.purpose)
        for table in SQLModel.metadata.sorted_tables
        for name, column_type in encrypted_columns(table).items()
    ]


def _stale(table: Table, name: str) -> ColumnElement[bool]:
    """The rows whose value in column `name` is not under the newest key (in the current format)."""
    raw = type_coerce(table.c[name], String())  # the stored text, as the database holds it
    return raw.is_not(None) & ~raw.startswith(f"{PREFIX}:{database_keys().current_kid}:", autoescape=True)


async def _rotate_column(
    sessions: SessionMaker, table: Table, name: str, purpose: str, batch: int, done: Rotated
) -> None:
    [key] = primary_key(table)
    raw = type_coerce(table.c[name], String())
    where = f"{table.name}.{name}"
    after: str | None = None
    while True:
        async with transaction(sessions) as session:
            query = select(key, raw).where(_stale(table, name)).order_by(key).limit(batch)
            if after is not None:
                query = query.where(key > after)
            connection = await session.connection()  # Core statements, on the session's transaction
            rows = (await connection.execute(query)).all()
            for row, stored in rows:
                try:
                    sealed = reseal(stored, purpose, str(row))
                except (UnknownKeyError, DecryptionError, ValueError) as err:
                    # Left as it is, and reported: the run goes on with the others (never the value).
                    log.warning("%s of row %r cannot be read: %s", where, row, type(err).__name__)
                    done.unreadable[where] += 1
                    continue
                if sealed is None:
                    continue
                # Only if unchanged since it was read: a value the service wrote meanwhile is its own.
                written = await connection.execute(
                    update(table)
                    .where(key == row, raw == stored)
                    .values({name: bindparam("sealed", sealed, type_=String())})
                )
                if written.rowcount:
                    done.rewritten[where] += 1
                else:
                    done.changed_meanwhile[where] += 1
        if len(rows) < batch:
            return
        after = rows[-1][0]
        log.info("%s: %d re-encrypted so far", where, done.rewritten[where])


async def _remaining(sessions: SessionMaker, done: Rotated) -> None:
    async with snapshot(sessions) as session:
        for table, name, _ in _encrypted():
            raw = type_coerce(table.c[name], String())
            connection = await session.connection()
            rows = (await connection.execute(select(raw).where(_stale(table, name)))).scalars()
            for stored in rows:
                done.remaining[(f"{table.name}.{name}", key_id(stored))] += 1


async def rotate(sessions: SessionMaker, batch: int = 500) -> Rotated:
    """Re-encrypt every stored secret under the newest key of the key ring handed over (`use_key_ring`)."""
    done = Rotated()
    for table, name, purpose in _encrypted():
        await _rotate_column(sessions, table, name, purpose, batch, done)
    await _remaining(sessions, done)
    return done


async def _main(batch: int) -> int:
    settings = get_settings()
    configure_logging(settings.log)
    engine = open_billing(settings.database)  # hands the key ring to the encrypted columns
    try:
        done = await rotate(make_sessionmaker(engine), batch)
    finally:
        await engine.dispose()
    ring = database_keys()
    for where in sorted(set(done.rewritten) | set(done.changed_meanwhile) | set(done.unreadable)):
        print(
            f"{where}: {done.rewritten[where]} re-encrypted, {done.changed_meanwhile[where]} changed meanwhile, "
            f"{done.unreadable[where]} unreadable"
        )
    if not done.done:
        for (where, kid), count in sorted(done.remaining.items()):
            print(f"{where}: {count} still under key {kid!r}")
        print("run it again (is every process running with the new key ring?)")
        return 1
    retired = [kid for kid in ring.keys if kid != ring.current_kid]
    print(f"every stored secret is under key {ring.current_kid!r}", end="")
    print(f"; {', '.join(map(repr, retired))} may be removed from DATABASE_ENCRYPTION_KEYS" if retired else "")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m billing.rotate_keys", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(_main(arguments.batch)))


if __name__ == "__main__":
    main()
