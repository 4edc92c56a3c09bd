"""Messaging by wallet, end to end: API → Temporal → account workflow → CMMS simulator, on SQLite and PostgreSQL."""

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from billing.models import Account, PushStatus, utcnow
from contracts.cmms import CmmsAccount
from contracts.provisioning import account_workflow_id
from contracts.wallets import MessagingRolloutResult
from core.gateway import result_once_started, start_order, sync_account
from tests.support.catalog import Catalog, create, new_id, order_body, seed_catalog
from tests.support.messaging import (
    ledger,
    move,
    open_wallet,
    ordered_account,
    product,
    wait_for_record,
    wait_for_wallet,
)
from tests.support.orders import finished, store_order, submit
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack


async def provisioning_state(stack: Stack, account_id: str) -> PushStatus:
    async with stack.sessions() as session:
        return (await session.get_one(Account, account_id)).provisioning_state


async def test_a_charge_to_zero_suspends_and_a_top_up_resumes(stack: Stack) -> None:
    account_id = await ordered_account(stack, push_events=True)
    # No wallet yet: nothing pays for messaging, so the order itself created the account suspended.
    assert (await wait_for_record(stack.sim, account_id, lambda r: True)).messaging_enabled is False

    await open_wallet(stack, account_id, 3)
    await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)
    await wait_for_wallet(stack, account_id, "active")

    assert (await move(stack, account_id, "charges", 3)).json()["balance"] == 0
    await wait_for_record(stack.sim, account_id, lambda r: not r.messaging_enabled)
    await wait_for_wallet(stack, account_id, "suspended")

    assert (await move(stack, account_id, "top-ups", 10)).status_code == 200
    resumed = await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)
    view = await wait_for_wallet(stack, account_id, "active")
    assert view["balance"] == 10
    # The device sees it too: the app's next fetch carries the messaging state.
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.version == resumed.version


async def test_a_burst_of_wallet_changes_ends_with_the_latest_state(stack: Stack) -> None:
    account_id = await ordered_account(stack, push_events=True)
    await open_wallet(stack, account_id, 1)
    for _ in range(5):  # empty, refilled, ... as fast as the API answers; last: empty
        assert (await move(stack, account_id, "charges", 1)).status_code == 200
        assert (await move(stack, account_id, "top-ups", 1)).status_code == 200
    assert (await move(stack, account_id, "charges", 1)).status_code == 200
    result = await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.messaging_enabled is False and record.version == result.cmms_version
    await wait_for_wallet(stack, account_id, "suspended")


async def test_product_policy_off_never_tells_the_cmms_even_with_the_account_policy_on(stack: Stack) -> None:
    for policy in (False, None):  # a policy with push_events off, and no messaging policy at all
        account_id = await ordered_account(stack, push_events=policy)
        put = await stack.api.put(
            f"/v1/accounts/{account_id}/service-policies/messaging", json={"push_events": True}, headers=stack.admin
        )
        assert put.status_code == 200 and put.json()["service_policies"] == {"messaging": {"push_events": True}}
        shown = (await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)).json()
        assert shown["service_policies"] == {"messaging": {"push_events": True}}
        before = await wait_for_record(stack.sim, account_id, lambda r: True)

        opened = await open_wallet(stack, account_id, 1)
        assert opened["push_events"] is False
        await move(stack, account_id, "charges", 1)
        # Even a push of the account's whole record (as any other change would cause) leaves messaging alone.
        await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
        after = await stack.sim.get_record(account_id)
        assert after is not None and after.messaging_enabled is True and after.version == before.version
        wallet = (await stack.api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=stack.admin)).json()
        assert wallet["messaging"] is None and wallet["balance"] == 0  # billing does not drive it

    bad = await stack.api.put(
        f"/v1/accounts/{account_id}/service-policies/messaging", json={"push_events": "maybe"}, headers=stack.admin
    )
    assert bad.status_code == 422
    missing = await stack.api.put(
        "/v1/accounts/nobody/service-policies/messaging", json={"push_events": True}, headers=stack.admin
    )
    assert missing.status_code == 404


async def test_a_cmms_outage_delays_but_never_loses_a_suspend_or_a_resume(
    stack: Stack, faulty_sim: SimulatorProcess
) -> None:
    account_id = await ordered_account(stack, push_events=True)
    await open_wallet(stack, account_id, 2)
    await wait_for_wallet(stack, account_id, "active")

    for kind, amount, enabled in (("charges", 2, False), ("top-ups", 5, True)):
        await faulty_sim.set_faults(outage_seconds=3)
        outage_ends = time.monotonic() + 3
        assert (await move(stack, account_id, kind, amount)).status_code == 200
        # The push is waiting for the CMMS: billing says so, and the wallet still shows the old state.
        await eventually(
            lambda: provisioning_state(stack, account_id),
            lambda state: state == PushStatus.retry,
            within=2.5,
            what="the push waiting for the CMMS",
        )
        await wait_for_record(faulty_sim, account_id, lambda r: r.messaging_enabled == enabled)  # noqa: B023
        assert time.monotonic() >= outage_ends
        await wait_for_wallet(stack, account_id, "active" if enabled else "suspended")


async def test_turning_a_product_policy_on_brings_its_accounts_into_line(stack: Stack) -> None:
    product_id = await product(stack, push_events=False)
    accounts = [await ordered_account(stack, product_id=product_id) for _ in range(3)]
    await open_wallet(stack, accounts[0], 5)  # the only one whose messaging is paid for
    for account_id in accounts:
        assert (await wait_for_record(stack.sim, account_id, lambda r: True)).messaging_enabled is True

    patch = {"service_policies": {"messaging": {"push_events": True}}}
    answer = await stack.api.patch(f"/v1/products/{product_id}", json=patch, headers=stack.admin)
    assert answer.status_code == 200, answer.text
    updated = answer.json()
    assert updated["service_policies"] == patch["service_policies"] and updated["workflow_id"]
    rollout = result_once_started(stack.temporal, updated["workflow_id"], MessagingRolloutResult)
    assert (await asyncio.wait_for(rollout, 30)).signalled == 3

    await wait_for_record(stack.sim, accounts[1], lambda r: not r.messaging_enabled)
    await wait_for_record(stack.sim, accounts[2], lambda r: not r.messaging_enabled)
    await wait_for_wallet(stack, accounts[0], "active")
    funded = await stack.sim.get_record(accounts[0])
    assert funded is not None and funded.messaging_enabled is True

    renamed = await stack.api.patch(f"/v1/products/{product_id}", json={"name": "Renamed"}, headers=stack.admin)
    assert renamed.status_code == 200 and renamed.json()["workflow_id"] is None
    assert renamed.json()["service_policies"] == patch["service_policies"]
    bad_bodies: list[dict[str, Any]] = [
        {"service_policies": {"voice": {}}},
        {"name": ""},
        {"service_policies": {"messaging": {}}},
        {"service_policies": {"messaging": {"push_events": True, "initial_wallet": {"amount": -1}}}},
        {"service_policies": {"messaging": {"push_events": True, "initial_wallet": {"amount": "5"}}}},
        {"service_policies": {"messaging": {"push_events": True, "initial_wallet": {"amount": 1, "valid_days": 0}}}},
        {"service_policies": {"messaging": {"push_events": True, "initial_wallet": {"valid_days": 3}}}},
    ]
    for bad in bad_bodies:
        response = await stack.api.patch(f"/v1/products/{product_id}", json=bad, headers=stack.admin)
        assert response.status_code == 422, bad
    missing = await stack.api.patch("/v1/products/nothing", json=patch, headers=stack.admin)
    assert missing.status_code == 404


async def _product(stack: Stack, messaging: dict[str, Any]) -> str:
    product_id = new_id("prod")
    body = {"product_id": product_id, "name": "Messaging", "service_policies": {"messaging": messaging}}
    await create(stack, "/v1/products", body)
    return product_id


async def _order(stack: Stack, product_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order's answer, and the order once its workflow ended."""
    catalog = await seed_catalog(stack)
    body = order_body(Catalog(customer_id=catalog.customer_id, product_id=product_id))
    answer = await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    return answer, order


async def test_a_products_initial_wallet_opens_with_the_ordered_account_and_its_workflow_waits_for_the_expiry(
    stack: Stack,
) -> None:
    starter = {"push_events": True, "initial_wallet": {"amount": 5, "valid_days": 30}}
    answer, order = await _order(stack, await _product(stack, starter))
    assert answer["messaging"] == order["messaging"] == "active"
    account_id = order["account_id"]
    assert (await wait_for_record(stack.sim, account_id, lambda r: True)).messaging_enabled is True  # never suspended
    wallet = await wait_for_wallet(stack, account_id, "active")
    expires_at = datetime.fromisoformat(wallet["expires_at"])
    assert wallet["balance"] == 5 and abs(expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert [(e["kind"], e["amount"]) for e in await ledger(stack, account_id)] == [("top_up", 5)]
    # The account's own workflow took over from the order, asleep until the wallet expires.
    description = await stack.temporal.get_workflow_handle(account_workflow_id(account_id)).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING

    # A product that drives messaging without an initial wallet: suspended from the start, and the answer says so;
    # a product that leaves messaging to the CMMS: nothing to say.
    answer, order = await _order(stack, await _product(stack, {"push_events": True}))
    assert answer["messaging"] == order["messaging"] == "suspended"
    assert (await wait_for_record(stack.sim, order["account_id"], lambda r: True)).messaging_enabled is False
    answer, _ = await _order(stack, await _product(stack, {"push_events": False}))
    assert answer["messaging"] is None


async def test_an_account_named_by_an_accepted_order_can_be_given_a_wallet_at_once(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    paid_by_wallet = Catalog(catalog.customer_id, await _product(stack, {"push_events": True}))
    order = await store_order(stack, paid_by_wallet, relayed=False)  # its workflow has not created the account
    opened = await open_wallet(stack, order.account_id, 7)
    assert opened["balance"] == 7 and opened["messaging"] is None
    again = await stack.api.post(
        f"/v1/accounts/{order.account_id}/wallets", json={"service": "messaging", "balance": 1}, headers=stack.admin
    )
    assert again.status_code == 409
    waiting = await stack.api.get(f"/v1/orders/{order.order_id}", headers=stack.website)
    assert waiting.json()["messaging"] == "active"  # the held wallet pays from the start

    await start_order(
        stack.temporal,
        stack.settings.temporal.task_queue,
        order.order_id,
        customer_id=order.customer_id,
        account_id=order.account_id,
    )
    done = await finished(stack, order.order_id)
    assert done["status"] == "completed" and done["messaging"] == "active"
    assert (await wait_for_record(stack.sim, order.account_id, lambda r: True)).messaging_enabled is True
    assert (await wait_for_wallet(stack, order.account_id, "active"))["balance"] == 7

    # Where the product opens the wallet with the account, there is nothing to open before.
    starter = {"push_events": True, "initial_wallet": {"amount": 1}}
    given = await store_order(stack, Catalog(catalog.customer_id, await _product(stack, starter)), relayed=False)
    refused = await stack.api.post(
        f"/v1/accounts/{given.account_id}/wallets", json={"service": "messaging", "balance": 1}, headers=stack.admin
    )
    assert refused.status_code == 409 and "with the account" in refused.json()["detail"]


async def test_turning_the_policy_off_hands_messaging_back_to_the_cmms_once(stack: Stack) -> None:
    product_id = await product(stack, push_events=True)
    account_id = await ordered_account(stack, product_id=product_id)  # no wallet: suspended
    assert (await wait_for_record(stack.sim, account_id, lambda r: True)).messaging_enabled is False

    off = {"service_policies": {"messaging": {"push_events": False}}}
    answer = await stack.api.patch(f"/v1/products/{product_id}", json=off, headers=stack.admin)
    assert answer.status_code == 200 and answer.json()["workflow_id"], answer.text
    await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)
    for _ in range(100):  # billing records the CMMS's answer just after the CMMS has it
        async with stack.sessions() as session:
            state = (await session.get_one(Account, account_id)).messaging_state
        if state is None:
            break
        await asyncio.sleep(0.05)
    assert state is None  # billing no longer drives it

    # The CMMS's own decision now stands: a later push of the account leaves its messaging alone.
    async with stack.sim.client() as cmms:
        record = await wait_for_record(stack.sim, account_id, lambda r: True)
        own = CmmsAccount(password="Cmms-Side-Change-1", imei=record.imei, profile=record.profile, domain=record.domain)
        await cmms.upsert_account(account_id, own.model_copy(update={"messaging_enabled": False}))
    await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    assert (await wait_for_record(stack.sim, account_id, lambda r: True)).messaging_enabled is False

    # Turned on again: billing drives it again (no wallet: suspended), and then a top-up resumes it.
    on = {"service_policies": {"messaging": {"push_events": True}}}
    assert (await stack.api.patch(f"/v1/products/{product_id}", json=on, headers=stack.admin)).status_code == 200
    await wait_for_wallet_less_state(stack, account_id, "suspended")
    await open_wallet(stack, account_id, 1)
    await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)


async def wait_for_wallet_less_state(stack: Stack, account_id: str, state: str) -> None:
    """Billing records the state the CMMS confirmed, for an account with no wallet as for one with."""
    for _ in range(300):
        async with stack.sessions() as session:
            if (await session.get_one(Account, account_id)).messaging_state == state:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{account_id} never recorded messaging {state}")


async def test_a_top_up_with_a_short_lifetime_expires_and_a_top_up_after_resumes(stack: Stack) -> None:
    account_id = await ordered_account(stack, push_events=True)
    soon = utcnow() + timedelta(seconds=2)
    assert (await move(stack, account_id, "top-ups", 4, expires_at=soon.isoformat())).status_code == 200
    await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)
    # The account's workflow wakes at the expiry: the units are written off and messaging is suspended.
    await wait_for_record(stack.sim, account_id, lambda r: not r.messaging_enabled)
    view = await wait_for_wallet(stack, account_id, "suspended")
    assert view["balance"] == 0
    entries = await ledger(stack, account_id)
    assert [(e["kind"], e["amount"]) for e in entries] == [("top_up", 4), ("expiry", -4)]
    assert datetime.fromisoformat(entries[-1]["at"]) == soon

    resumed = await move(stack, account_id, "top-ups", 10, valid_days=30)
    assert resumed.status_code == 200 and resumed.json()["balance"] == 10
    await wait_for_record(stack.sim, account_id, lambda r: r.messaging_enabled)
    await wait_for_wallet(stack, account_id, "active")
