"""The account workflow pushes billing's current state to the CMMS, in order, and removes terminated accounts."""

import asyncio

from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import Account, AccountStatus, Customer, utcnow
from core.gateway import account_changed, sync_account
from tests.support.catalog import order_body, seed_catalog
from tests.support.orders import finished, submit
from tests.support.stack import Stack


async def _ordered_account(stack: Stack) -> tuple[str, str]:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    body = order_body(catalog)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    return order["account_id"], catalog.customer_id


async def _update(session: AsyncSession, account: Account) -> None:
    account.revision += 1
    account.updated_at = utcnow()
    session.add(account)
    await session.commit()


async def test_sync_pushes_the_current_state_and_raises_the_version(stack: Stack) -> None:
    account_id, customer_id = await _ordered_account(stack)
    async with stack.sessions() as session:
        customer = await session.get_one(Customer, customer_id)
        customer.custom_fields = {"profileName": "Business"}
        session.add(customer)
        await session.commit()
    result = await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    assert result.cmms_version == 2 and not result.removed
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.profile == "Business" and record.version == 2


async def test_a_burst_of_signals_ends_with_the_newest_state(stack: Stack) -> None:
    account_id, _ = await _ordered_account(stack)
    for blocked in (True, False, True):
        async with stack.sessions() as session:
            account = await session.get_one(Account, account_id)
            account.status = AccountStatus.blocked if blocked else AccountStatus.active
            await _update(session, account)
        await account_changed(stack.temporal, stack.settings.temporal.task_queue, account_id)
    result = await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.blocked is True and record.version == result.cmms_version


async def test_a_terminated_account_leaves_the_cmms_and_the_workflow_ends(stack: Stack) -> None:
    account_id, _ = await _ordered_account(stack)
    async with stack.sessions() as session:
        account = await session.get_one(Account, account_id)
        account.status = AccountStatus.terminated
        await _update(session, account)
    result = await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    assert result.removed and await stack.sim.get_record(account_id) is None
    handle = stack.temporal.get_workflow_handle(f"account-{account_id}")
    final = await asyncio.wait_for(handle.result(), 30)
    assert final["removed"] is True
