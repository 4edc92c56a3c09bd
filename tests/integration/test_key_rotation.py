"""Stored secrets move to a new database key while the service runs, and each is bound to its row: the
rotation command (`python -m billing.rotate_keys`) on SQLite and PostgreSQL, and a swap of two accounts'
encrypted passwords by a database writer, which reading detects."""

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import String, select, text, type_coerce
from sqlmodel import SQLModel

from billing.db import SessionMaker, make_engine, make_sessionmaker, transaction
from billing.encrypted import database_keys, use_key_ring
from billing.models import Account, Customer, CustomerClass, Order, Product, Signup, utcnow
from billing.rotate_keys import rotate
from core.crypto import DecryptionError, KeyRing, UnknownKeyError
from core.settings import Settings
from tests.support.catalog import new_id, random_imei
from tests.support.database import fresh_database

ROOT = Path(__file__).resolve().parents[2]
DEV_RING = Settings(_env_file=None).database.key_ring


def _key(name: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()).decode()


OLD = f"old:{_key('old')}"
NEW = f"new:{_key('new')}"


@contextmanager
def key_ring(spec: str) -> Iterator[KeyRing]:
    """The process's database key ring is `spec` inside (as every process's would be, once restarted)."""
    ring = KeyRing.parse(spec)
    use_key_ring(ring)
    try:
        yield ring
    finally:
        use_key_ring(DEV_RING)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for each test: a rotation reads every row, and the keys differ by test."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def sessions(database: str) -> AsyncIterator[SessionMaker]:
    engine = make_engine(database)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _catalog(sessions: SessionMaker) -> tuple[str, str]:
    class_id, customer_id, product_id = new_id("class"), new_id("cust"), new_id("prod")
    async with transaction(sessions) as session:
        session.add(CustomerClass(customer_class_id=class_id, name="Retail"))
        await session.flush()
        session.add(Customer(customer_id=customer_id, name="Ada", customer_class_id=class_id))
        session.add(Product(product_id=product_id, name="Mobile"))
    return customer_id, product_id


async def _secrets(sessions: SessionMaker, accounts: int) -> dict[tuple[type[SQLModel], str], str]:
    """Accounts, an order and a signup, each holding a secret: (model, primary key) → the secret."""
    customer_id, product_id = await _catalog(sessions)
    written: dict[tuple[type[SQLModel], str], str] = {}
    async with transaction(sessions) as session:
        for index in range(accounts):
            account_id = new_id("acct")
            written[(Account, account_id)] = f"Sip-{index}-{account_id}"
            session.add(
                Account(
                    account_id=account_id,
                    customer_id=customer_id,
                    product_id=product_id,
                    sip_password=written[(Account, account_id)],
                    created_by="test",
                )
            )
        order_id, signup_id = new_id("ord"), new_id("su")
        written[(Order, order_id)] = f"Requested-{order_id}"
        session.add(
            Order(
                order_id=order_id,
                customer_id=customer_id,
                product_id=product_id,
                account_id=new_id("acct"),
                imei=random_imei(),
                requested_password=written[(Order, order_id)],
                fingerprint="0" * 64,
                workflow_id=f"order-{order_id}",
            )
        )
        written[(Signup, signup_id)] = f"Issued-{signup_id}"
        session.add(
            Signup(
                signup_id=signup_id,
                phone_number="+4915112345678",
                expires_at=utcnow() + timedelta(minutes=10),
                requested_password=written[(Signup, signup_id)],
            )
        )
    return written


_SECRET: dict[type[SQLModel], str] = {
    Account: "sip_password",
    Order: "requested_password",
    Signup: "requested_password",
}


async def _read(sessions: SessionMaker, model: type[SQLModel], key: str) -> str:
    async with sessions() as session:
        found: SQLModel | None = await session.get(model, key, populate_existing=True)
        assert found is not None
        value: str = getattr(found, _SECRET[model])
        return value


async def _stored(sessions: SessionMaker, model: type[SQLModel], key: str) -> str:
    """The text the database holds, as a database writer sees it."""
    table = model.__table__  # type: ignore[attr-defined]
    [column] = table.primary_key.columns
    async with sessions() as session:
        query = select(type_coerce(table.c[_SECRET[model]], String())).where(column == key)
        value: str = (await (await session.connection()).execute(query)).scalar_one()
        return value


async def test_rotation_moves_every_secret_to_the_new_key_while_the_service_writes(
    sessions: SessionMaker,
) -> None:
    with key_ring(OLD):
        written = await _secrets(sessions, accounts=7)
    assert all([(await _stored(sessions, *where)).startswith("v2:old:") for where in written])

    # The new key first, the old one after it: what every process runs with before the rotation.
    with key_ring(f"{NEW},{OLD}"):
        busy = next(key for model, key in written if model is Account)
        stop = asyncio.Event()

        async def service_writes() -> None:
            # The service keeps changing one account's password meanwhile (under the new key).
            turn = 0
            while not stop.is_set():
                turn += 1
                async with transaction(sessions) as session:
                    account = await session.get_one(Account, busy)
                    account.sip_password = written[(Account, busy)] = f"Changed-{turn}"
                    session.add(account)
                await asyncio.sleep(0)

        writer = asyncio.create_task(service_writes())
        try:
            done = await rotate(sessions, batch=2)  # several batches, each its own transaction
        finally:
            stop.set()
            await writer
        assert done.done and not done.unreadable
        # Every other value rewritten; the busy one, by the service or by the rotation.
        assert len(written) - 1 <= sum(done.rewritten.values()) + sum(done.changed_meanwhile.values()) <= len(written)

        again = await rotate(sessions, batch=2)  # resumable: a second run finds nothing left to do
        assert again.done and not again.rewritten

    # The old key removed: everything reads, as it was written.
    with key_ring(NEW):
        for (model, key), secret in written.items():
            assert (await _stored(sessions, model, key)).startswith("v2:new:")
            assert await _read(sessions, model, key) == secret
    with key_ring(OLD), pytest.raises(UnknownKeyError):
        await _read(sessions, Account, busy)


async def test_a_value_a_process_with_the_old_key_ring_wrote_is_reported_and_caught_by_a_second_run(
    sessions: SessionMaker,
) -> None:
    with key_ring(OLD):
        written = await _secrets(sessions, accounts=2)
    with key_ring(f"{NEW},{OLD}"):
        assert (await rotate(sessions)).done
    account_id = next(key for model, key in written if model is Account)
    with key_ring(f"{OLD},{NEW}"):  # a process not restarted yet writes under the old key
        async with transaction(sessions) as session:
            account = await session.get_one(Account, account_id)
            account.sip_password = "Late-Write-1"
            session.add(account)
    with key_ring(f"{NEW},{OLD}"):
        assert await _read(sessions, Account, account_id) == "Late-Write-1"
        done = await rotate(sessions)
        assert done.rewritten["account.sip_password"] == 1 and done.done
    with key_ring(NEW):
        assert await _read(sessions, Account, account_id) == "Late-Write-1"


async def test_swapping_two_accounts_encrypted_passwords_is_detected_on_read(sessions: SessionMaker) -> None:
    written = await _secrets(sessions, accounts=2)
    first, second = [key for model, key in written if model is Account]
    one, other = await _stored(sessions, Account, first), await _stored(sessions, Account, second)
    swap = text("UPDATE account SET sip_password = :value WHERE account_id = :key")
    async with transaction(sessions) as session:
        connection = await session.connection()
        await connection.execute(swap, {"value": other, "key": first})
        await connection.execute(swap, {"value": one, "key": second})
    for account_id in (first, second):
        with pytest.raises(DecryptionError, match="does not authenticate"):
            await _read(sessions, Account, account_id)
    # Put back, each reads again: the values themselves were intact, only their rows were swapped.
    async with transaction(sessions) as session:
        connection = await session.connection()
        await connection.execute(swap, {"value": one, "key": first})
        await connection.execute(swap, {"value": other, "key": second})
    assert await _read(sessions, Account, first) == written[(Account, first)]


async def test_a_value_bound_to_its_column_alone_is_refused(sessions: SessionMaker) -> None:
    # The format before rows were bound in (v1): the migration rewrites it, and reading refuses it.
    written = await _secrets(sessions, accounts=1)
    account_id = next(key for model, key in written if model is Account)
    kid, sealed = database_keys().encrypt(b"Unbound-1", b"account.sip_password")
    legacy = f"v1:{kid}:{base64.urlsafe_b64encode(sealed).decode()}"
    async with transaction(sessions) as session:
        change = text("UPDATE account SET sip_password = :value WHERE account_id = :key")
        await (await session.connection()).execute(change, {"value": legacy, "key": account_id})
    with pytest.raises(ValueError, match="unknown encrypted-column format 'v1'"):
        await _read(sessions, Account, account_id)
    done = await rotate(sessions)  # the rotation turns any left into the row-bound format
    assert done.rewritten["account.sip_password"] == 1
    assert await _read(sessions, Account, account_id) == "Unbound-1"


async def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command run as an operator runs it, in a process of its own (off the event loop)."""
    return await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_command_rotates_and_says_which_keys_may_go(database: str, sessions: SessionMaker) -> None:
    with key_ring(OLD):
        written = await _secrets(sessions, accounts=3)
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.variables()}
    env |= {"DATABASE_URL": database, "DATABASE_ENCRYPTION_KEYS": f"{NEW},{OLD}", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "billing.rotate_keys", "--batch", "2"]
    done = await _run(command, env)
    assert done.returncode == 0, done.stderr
    assert "every stored secret is under key 'new'; 'old' may be removed" in done.stdout
    assert "account.sip_password: " in done.stdout  # counts by column (every database's rows: its tables)
    for secret in written.values():
        assert secret not in done.stdout + done.stderr
    with key_ring(NEW):
        for (model, key), secret in written.items():
            assert await _read(sessions, model, key) == secret
    # A key ring without the key the data is under: nothing is lost, the run says what is left.
    env["DATABASE_ENCRYPTION_KEYS"] = f"newer:{_key('newer')}"
    stuck = await _run(command, env)
    assert stuck.returncode == 1 and "still under key 'new'" in stuck.stdout, stuck.stdout + stuck.stderr
    with key_ring(NEW):
        assert all([await _read(sessions, model, key) == secret for (model, key), secret in written.items()])
