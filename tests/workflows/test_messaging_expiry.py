"""A wallet's expiry suspends messaging from a durable timer: 30 days pass on Temporal's time-skipping server."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from billing.db import make_engine, make_sessionmaker, transaction
from billing.messaging import MESSAGING
from billing.models import Account, AccountStatus, Customer, CustomerClass, Product
from billing.wallets import Movement, MovementKind
from core.settings import Settings
from services.outbox import Outbox
from services.wallets import apply_movement, get_wallet, ledger, open_wallet
from tests.support.catalog import new_id
from tests.support.database import sqlite_database
from tests.support.messaging import wait_for_record
from tests.support.simulator import SimulatorProcess
from tests.support.stack import running_worker, stack_settings
from tests.support.temporal_server import server_address


@dataclass
class Skipping:
    env: WorkflowEnvironment
    settings: Settings
    outbox: Outbox  # wallet changes tell the account's workflow through it, as the API's do


@pytest.fixture(scope="module")
async def skipping(
    time_skipping_server: WorkflowEnvironment, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Skipping]:
    """The real worker, on the time-skipping server, a SQLite billing database and the simulator."""
    database_url = sqlite_database(Path(tmp_path_factory.mktemp("expiry")))
    address = server_address(time_skipping_server)
    settings = stack_settings(address, database_url, sim)
    engine = make_engine(database_url)
    async with running_worker(settings):
        yield Skipping(
            time_skipping_server,
            settings,
            Outbox(
                make_sessionmaker(engine), time_skipping_server.client, settings.outbox, settings.temporal.task_queue
            ),
        )
    await engine.dispose()


async def _account_with_wallet(outbox: Outbox, env: WorkflowEnvironment, expires_in: timedelta) -> str:
    class_id, customer_id, product_id, account_id = new_id("class"), new_id("cust"), new_id("prod"), new_id("acct")
    async with transaction(outbox.sessions) as session:
        # Flushed one by one: without ORM relationships, nothing orders the inserts by their foreign keys.
        session.add(CustomerClass(customer_class_id=class_id, name="Retail"))
        await session.flush()
        session.add(Customer(customer_id=customer_id, name="Ada", customer_class_id=class_id))
        policies = {"messaging": {"push_events": True}}
        session.add(Product(product_id=product_id, name="Messaging", service_policies=policies))
        await session.flush()
        session.add(
            Account(
                account_id=account_id,
                customer_id=customer_id,
                product_id=product_id,
                sip_password="Expiry-Test-Secret-1",
                status=AccountStatus.active,
                created_by="test",
            )
        )
    await open_wallet(outbox, account_id, MESSAGING, 10, await env.get_current_time() + expires_in)
    return account_id


async def test_an_expiry_30_days_out_suspends_messaging_and_a_top_up_after_it_starts_a_new_balance(
    skipping: Skipping, sim: SimulatorProcess
) -> None:
    env, outbox = skipping.env, skipping.outbox
    account_id = await _account_with_wallet(outbox, env, timedelta(days=30))  # the outbox tells its workflow
    await wait_for_record(sim, account_id, lambda r: r.messaging_enabled)

    await env.sleep(timedelta(days=29))
    assert (await wait_for_record(sim, account_id, lambda r: True)).messaging_enabled is True

    await env.sleep(timedelta(days=1, seconds=5))
    await wait_for_record(sim, account_id, lambda r: not r.messaging_enabled)
    wallet = await get_wallet(outbox, account_id, MESSAGING)
    assert wallet.balance == 0 and wallet.messaging_state == "suspended"  # the 10 units expired, for good
    page = await ledger(outbox, account_id, MESSAGING, limit=10, after=None)
    assert [(entry.kind, entry.amount) for entry in page.entries] == [
        (MovementKind.top_up, 10),
        (MovementKind.expiry, -10),
    ]

    now = await env.get_current_time()
    await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.top_up, 1, valid_days=30), now=now)
    await wait_for_record(sim, account_id, lambda r: r.messaging_enabled)
    resumed = await get_wallet(outbox, account_id, MESSAGING)
    assert resumed.balance == 1 and resumed.messaging_state == "active"  # a new balance: nothing came back

    # The new top-up's expiry fires too: the workflow re-armed its timer from the top-up's push.
    await env.sleep(timedelta(days=30, seconds=5))
    await wait_for_record(sim, account_id, lambda r: not r.messaging_enabled)
