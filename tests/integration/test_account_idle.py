"""An account with nothing pending holds no running workflow: its workflow ends once in sync, and the next
change (signal-with-start or update-with-start) runs it again, in order, one run at a time."""

import time

from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus

from billing.models import Account, AccountStatus, Customer, utcnow
from contracts.provisioning import account_workflow_id
from contracts.search_attributes import PROVISIONING_STATE, ProvisioningState
from core.gateway import account_changed, sync_account
from tests.support.catalog import order_body, random_imei, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.stack import Stack


async def _ordered_account(stack: Stack) -> tuple[str, str]:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    body = order_body(catalog)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    return order["account_id"], catalog.customer_id


async def _block(stack: Stack, account_id: str, blocked: bool) -> None:
    async with stack.sessions() as session:
        account = await session.get_one(Account, account_id)
        account.status = AccountStatus.blocked if blocked else AccountStatus.active
        account.revision += 1
        account.updated_at = utcnow()
        session.add(account)
        await session.commit()


async def _ended(stack: Stack, account_id: str) -> WorkflowExecutionDescription:
    """The account workflow's latest run, once it has ended (completed) with nothing left to do."""
    handle = stack.temporal.get_workflow_handle(account_workflow_id(account_id))
    return await eventually(
        handle.describe,
        lambda d: d.status == WorkflowExecutionStatus.COMPLETED,
        what="the account workflow ends once idle",
    )


async def test_an_idle_account_holds_no_running_workflow_and_its_next_change_runs_it_again(stack: Stack) -> None:
    account_id, _ = await _ordered_account(stack)
    task_queue = stack.settings.temporal.task_queue
    await _block(stack, account_id, True)
    await account_changed(stack.temporal, task_queue, account_id)
    await eventually(lambda: stack.sim.get_record(account_id), lambda r: r is not None and r.blocked)
    first = await _ended(stack, account_id)

    # The next change starts it again (a new run under the same id) and reaches the CMMS.
    await _block(stack, account_id, False)
    await account_changed(stack.temporal, task_queue, account_id)
    record = await eventually(lambda: stack.sim.get_record(account_id), lambda r: r is not None and not r.blocked)
    second = await _ended(stack, account_id)
    assert second.run_id != first.run_id
    assert record is not None and record.version == 3

    # The account's view still answers, from billing's record of the last push, with the runs it had.
    found = await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)
    assert found.status_code == 200 and found.json()["last_error"] is None
    history = (await stack.api.get(f"/v1/accounts/{account_id}/history", headers=stack.admin)).json()
    own = [run for run in history["workflows"] if run["workflow_id"] == account_workflow_id(account_id)]
    assert len(own) >= 2 and {run["status"] for run in own} == {"completed"}
    assert history["last_error"] is None


async def test_a_burst_of_changes_to_an_idle_account_ends_with_the_newest_state(stack: Stack) -> None:
    account_id, _ = await _ordered_account(stack)
    task_queue = stack.settings.temporal.task_queue
    await sync_account(stack.temporal, task_queue, account_id)
    await _ended(stack, account_id)
    for blocked in (True, False, True):
        await _block(stack, account_id, blocked)
        await account_changed(stack.temporal, task_queue, account_id)
    result = await sync_account(stack.temporal, task_queue, account_id)
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.blocked is True and record.version == result.cmms_version
    await _ended(stack, account_id)


async def test_a_sync_of_an_idle_account_starts_its_workflow_and_answers_once_the_cmms_holds_it(stack: Stack) -> None:
    account_id, customer_id = await _ordered_account(stack)
    task_queue = stack.settings.temporal.task_queue
    first = await sync_account(stack.temporal, task_queue, account_id)
    await _ended(stack, account_id)
    async with stack.sessions() as session:
        customer = await session.get_one(Customer, customer_id)
        customer.custom_fields = {"profileName": "Business"}
        session.add(customer)
        await session.commit()
    result = await sync_account(stack.temporal, task_queue, account_id)
    assert first.cmms_version is not None and result.cmms_version == first.cmms_version + 1
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.profile == "Business" and record.version == result.cmms_version
    await _ended(stack, account_id)


async def test_a_refused_account_keeps_its_workflow_counted_and_answering_its_last_error(stack: Stack) -> None:
    account_id, _ = await _ordered_account(stack)
    await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    await _ended(stack, account_id)
    # Another CMMS record holds the IMEI the account is given: the CMMS refuses the push for good.
    imei = random_imei()
    squatter = {"password": "Squatter-Secret-3", "imei": imei, "profile": "Residential", "domain": "x.example"}
    put = await stack.sim.http.put(f"/api/v1/accounts/sq-{time.time_ns()}", json=squatter, headers=stack.sim.auth)
    assert put.status_code == 201
    changed = await stack.api.patch(f"/v1/accounts/{account_id}", json={"imei": imei}, headers=stack.admin)
    assert changed.status_code == 202
    handle = stack.temporal.get_workflow_handle(account_workflow_id(account_id))
    refused = await eventually(
        handle.describe,
        lambda d: d.typed_search_attributes.get(PROVISIONING_STATE) == ProvisioningState.refused.value,
        what="the push refused",
    )
    # It keeps running (the operations gauge counts running refused accounts) and answers its last error.
    assert refused.status == WorkflowExecutionStatus.RUNNING
    history = (await stack.api.get(f"/v1/accounts/{account_id}/history", headers=stack.admin)).json()
    assert "CMMS rejected" in (history["last_error"] or "")
    found = (await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)).json()
    assert "CMMS rejected" in (found["last_error"] or "")
