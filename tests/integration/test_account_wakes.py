"""The wake sweep: an account due by the clock beyond the idle-timer horizon holds no running workflow; the
sweep starts it once the wake-up comes within the horizon, and its timer fires at the wake-up."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from billing.models import utcnow
from contracts.provisioning import account_workflow_id
from services.account_wakes import wake_due_accounts, wake_due_accounts_forever
from tests.support.messaging import ledger, move, ordered_account, wait_for_record, wait_for_wallet
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_stack, stack_settings

HORIZON = timedelta(seconds=10)


@pytest.fixture(scope="module")
async def stack(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    """A stack whose accounts keep a timer only for a wake-up due within 10 seconds."""
    settings = stack_settings(
        dev_server,
        billing_database,
        sim,
        account_idle_timer_horizon_seconds=HORIZON.total_seconds(),
        account_wake_sweep_seconds=1,
    )
    async with running_stack(settings, sim) as running:
        yield running


async def test_a_wallet_due_beyond_the_horizon_is_woken_by_the_sweep_and_expires_on_time(stack: Stack) -> None:
    account_id = await ordered_account(stack, push_events=True)
    expiry = (utcnow() + timedelta(seconds=20)).replace(microsecond=0)
    assert (await move(stack, account_id, "top-ups", 4, expires_at=expiry.isoformat())).status_code == 200
    await wait_for_record(stack.sim, account_id, lambda r: bool(r.messaging_enabled))
    handle = stack.temporal.get_workflow_handle(account_workflow_id(account_id))
    # Due beyond the horizon: the workflow ends rather than keep a timer.
    ended = await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)

    # The worker's sweep (every second here) starts it again once the expiry is within the horizon, before
    # the expiry: it waits on a timer. Its later rounds leave the running one alone.
    task_queue = stack.settings.temporal.task_queue
    sweeping = asyncio.create_task(wake_due_accounts_forever(stack.sessions, stack.temporal, task_queue, HORIZON, 1.0))
    try:
        woken = await eventually(handle.describe, lambda d: d.run_id != ended.run_id, what="the sweep starts it")
        assert woken.start_time is not None and woken.start_time < expiry
        assert woken.status == WorkflowExecutionStatus.RUNNING
        await wait_for_record(stack.sim, account_id, lambda r: not r.messaging_enabled)
        view = await wait_for_wallet(stack, account_id, "suspended")
        assert view["balance"] == 0
        entries = await ledger(stack, account_id)
        assert [(e["kind"], e["amount"]) for e in entries] == [("top_up", 4), ("expiry", -4)]
        assert datetime.fromisoformat(entries[-1]["at"]) == expiry
        # Nothing left to wait for: it ends again, and a sweep finds nothing due.
        await eventually(
            handle.describe, lambda d: d.run_id == woken.run_id and d.status == WorkflowExecutionStatus.COMPLETED
        )
    finally:
        sweeping.cancel()
    assert await wake_due_accounts(stack.sessions, stack.temporal, task_queue, HORIZON) == 0


async def test_a_wallet_due_within_the_horizon_keeps_its_timer_and_expires_without_a_sweep(stack: Stack) -> None:
    account_id = await ordered_account(stack, push_events=True)
    expiry = (utcnow() + timedelta(seconds=4)).replace(microsecond=0)
    assert (await move(stack, account_id, "top-ups", 4, expires_at=expiry.isoformat())).status_code == 200
    await wait_for_record(stack.sim, account_id, lambda r: bool(r.messaging_enabled))
    # No sweep runs beside the test's worker: only the workflow's own timer can suspend messaging.
    await wait_for_record(stack.sim, account_id, lambda r: not r.messaging_enabled)
    entries = await ledger(stack, account_id)
    assert [(e["kind"], e["amount"]) for e in entries] == [("top_up", 4), ("expiry", -4)]
    handle = stack.temporal.get_workflow_handle(account_workflow_id(account_id))
    await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
