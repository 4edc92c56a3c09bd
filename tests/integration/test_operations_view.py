"""What ops see in the Temporal UI: search attributes that find a stuck order, a customer's rollout and
an account's history, kept current by the workflows; and, across every history of a full run of all
the use cases, not one SIP password or SMS code."""

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowExecution

from contracts.search_attributes import ACCOUNT_ID, CUSTOMER_ID, ORDER_ID, PROVISIONING_STATE
from core.register_search_attributes import register_search_attributes
from tests.support.catalog import order_body, seed_catalog
from tests.support.database import sqlite_database
from tests.support.history import dump_histories
from tests.support.messaging import move, open_wallet, ordered_account, product, wait_for_record
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.rollouts import patch_customer, rollout_when
from tests.support.signups import last_code, random_mobile, sent_codes, signup_stack
from tests.support.stack import Stack


@pytest.fixture(scope="module")
async def stack(dev_server: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The whole service with SMS (a simulator of its own); what is tested here is Temporal's side."""
    database = sqlite_database(tmp_path_factory.mktemp("ops-billing"))
    sim_state = tmp_path_factory.mktemp("ops-sim")
    async with signup_stack(dev_server, database, sim_state, signup_resend_cooldown_seconds=1) as running:
        yield running


async def listed(stack: Stack, query: str, count: int = 1, within: float = 30.0) -> list[WorkflowExecution]:
    """The runs of this stack's task queue that `query` selects, once there are `count` of them
    (visibility lists a change a moment after it happens)."""
    scoped = f'TaskQueue = "{stack.settings.temporal.task_queue}" AND ({query})'

    async def runs() -> list[WorkflowExecution]:
        return [execution async for execution in stack.temporal.list_workflows(scoped)]

    found = await eventually(runs, lambda found: len(found) >= count, within=within, what=query)
    assert len(found) == count, f"{query}: {[(e.id, e.typed_search_attributes) for e in found]}"
    return found


async def test_ops_find_an_order_its_account_and_its_customers_rollout(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    account_id = order["account_id"]

    (found,) = await listed(stack, f'OrderId = "{body["order_id"]}" AND ProvisioningState = "completed"')
    assert found.id == f"order-{body['order_id']}" and found.workflow_type == "MvnoOrderWorkflow"
    attributes = found.typed_search_attributes
    assert attributes.get(CUSTOMER_ID) == catalog.customer_id and attributes.get(ACCOUNT_ID) == account_id

    await patch_customer(stack.api, catalog.customer_id, {"profileName": "Business"})
    await rollout_when(stack.api, catalog.customer_id)
    query = f'CustomerId = "{catalog.customer_id}" AND WorkflowType = "CustomerRolloutWorkflow"'
    (rollout,) = await listed(stack, f'{query} AND ProvisioningState = "completed"')
    assert rollout.id == f"rollout-{catalog.customer_id}"

    # The account's history: its order and its own workflow, which learnt its customer from billing.
    history = await listed(stack, f'AccountId = "{account_id}"', count=2)
    assert {e.workflow_type for e in history} == {"MvnoOrderWorkflow", "AccountWorkflow"}
    (account,) = await listed(stack, f'AccountId = "{account_id}" AND ProvisioningState = "in_sync"')
    assert account.typed_search_attributes.get(CUSTOMER_ID) == catalog.customer_id


async def test_a_stuck_order_and_account_show_where_they_wait(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    account_id = await ordered_account(stack)
    # This module's stack has a CMMS simulator of its own: the outage goes there.
    await stack.sim.set_faults(outage_seconds=3600)
    body = order_body(catalog)
    await submit(stack, body)
    changed = await stack.api.patch(f"/v1/accounts/{account_id}", json={"blocked": True}, headers=stack.admin)
    assert changed.status_code == 202, changed.text

    stuck = 'WorkflowType = "MvnoOrderWorkflow" AND ExecutionStatus = "Running" AND ProvisioningState = "provisioning"'
    (order,) = await listed(stack, f'{stuck} AND OrderId = "{body["order_id"]}"')
    assert order.typed_search_attributes.get(ORDER_ID) == body["order_id"]
    await listed(stack, f'AccountId = "{account_id}" AND ProvisioningState = "pushing"')

    await stack.sim.clear_faults()
    assert (await finished(stack, body["order_id"]))["status"] == "completed"
    await listed(stack, f'OrderId = "{body["order_id"]}" AND ProvisioningState = "completed"')
    await listed(stack, f'AccountId = "{account_id}" AND ProvisioningState = "in_sync"')


async def test_a_refused_order_shows_failed(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    # The CMMS gives the IMEI to an account billing does not know, so it refuses the order's (409).
    squatter = {"password": "x" * 12, "imei": body["account"]["imei"], "profile": "Residential", "domain": "x.example"}
    put = await stack.sim.http.put(f"/api/v1/accounts/sq-{secrets.token_hex(4)}", json=squatter, headers=stack.sim.auth)
    assert put.status_code == 201
    await submit(stack, body)
    assert (await finished(stack, body["order_id"]))["status"] == "failed"
    (failed,) = await listed(stack, f'OrderId = "{body["order_id"]}" AND ProvisioningState = "failed"')
    assert failed.status is not None and failed.status.name == "COMPLETED"  # the workflow did its job


async def test_a_signup_shows_pending_then_verified_with_its_account(stack: Stack) -> None:
    number = random_mobile()
    started = await stack.sim.http.post("/app/v1/signup", json={"phone_number": number})
    signup_id = started.json()["signup_id"]
    (pending,) = await listed(stack, f'WorkflowId = "signup-{number.lstrip("+")}" AND ProvisioningState = "pending"')
    assert pending.typed_search_attributes.get(ACCOUNT_ID) is None

    verified = await stack.sim.http.post(
        "/app/v1/verify", json={"signup_id": signup_id, "code": await last_code(stack.sim, number)}
    )
    assert verified.status_code == 200, verified.text
    account_id = verified.json()["account_id"]
    (done,) = await listed(stack, f'AccountId = "{account_id}" AND WorkflowType = "OttSignupWorkflow"')
    assert done.typed_search_attributes.get(PROVISIONING_STATE) == "verified"


async def _password_of(stack: Stack, imei: str) -> str:
    """What the device receives from the CMMS: the account's SIP password in the clear."""
    device = await stack.sim.http.post("/device/v1/provision", json={"imei": imei})
    assert device.status_code == 200, device.text
    password: str = device.json()["password"]
    return password


async def test_no_history_of_a_full_run_holds_a_password_or_a_code(stack: Stack) -> None:
    """Every use case on one task queue, then every run on it read as stored and through the codec."""
    secrets_used: list[str] = []
    ids: list[str] = []

    # MVNO orders: two orders, one with a password of the website's choosing, one generated.
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    chosen = f"Chosen-{secrets.token_hex(8)}"
    bodies = [order_body(catalog, password=chosen), order_body(catalog)]
    for body in bodies:
        await submit(stack, body)
    accounts = []
    for body in bodies:
        order = await finished(stack, body["order_id"])
        assert order["status"] == "completed", order
        accounts.append(order["account_id"])
        secrets_used.append(await _password_of(stack, body["account"]["imei"]))
    assert secrets_used[0] == chosen
    ids += [body["order_id"] for body in bodies] + accounts

    # A password change reaches the device through the account's workflow.
    changed_to = f"Changed-{secrets.token_hex(8)}"
    patch = {"password": changed_to}
    patched = await stack.api.patch(f"/v1/accounts/{accounts[1]}", json=patch, headers=stack.admin)
    assert patched.status_code == 202, patched.text
    await wait_for_record(stack.sim, accounts[1], lambda record: record.version >= 2)
    assert await _password_of(stack, bodies[1]["account"]["imei"]) == changed_to
    secrets_used.append(changed_to)

    # Customized provisioning: a profile change rolled out to the customer's accounts.
    await patch_customer(stack.api, catalog.customer_id, {"profileName": "Business"})
    await rollout_when(stack.api, catalog.customer_id)

    # Messaging by wallet: a product's messaging policy turned on, then a wallet runs dry and is topped up.
    product_id = await product(stack, push_events=False)
    wallet_account = await ordered_account(stack, product_id=product_id)
    await open_wallet(stack, wallet_account, 5)
    policy = {"service_policies": {"messaging": {"push_events": True}}}
    turned_on = await stack.api.patch(f"/v1/products/{product_id}", json=policy, headers=stack.admin)
    assert turned_on.status_code == 200 and turned_on.json()["workflow_id"], turned_on.text
    await wait_for_record(stack.sim, wallet_account, lambda record: record.messaging_enabled)
    assert (await move(stack, wallet_account, "charges", 5)).status_code == 200
    await wait_for_record(stack.sim, wallet_account, lambda record: not record.messaging_enabled)
    assert (await move(stack, wallet_account, "top-ups", 10)).status_code == 200
    await wait_for_record(stack.sim, wallet_account, lambda record: record.messaging_enabled)
    ids.append(wallet_account)

    # OTT self-signup: a signup with a wrong code, a resend and the right code.
    number = random_mobile()
    started = await stack.sim.http.post("/app/v1/signup", json={"phone_number": number})
    signup_id = started.json()["signup_id"]
    first = await last_code(stack.sim, number)
    wrong = f"{(int(first) + 1) % 1_000_000:06d}"
    answer: dict[str, Any] = {"signup_id": signup_id, "code": wrong}
    assert (await stack.sim.http.post("/app/v1/verify", json=answer)).status_code == 422
    await asyncio.sleep(stack.settings.signups.resend_cooldown_seconds)
    assert (await stack.api.post(f"/v1/signups/{signup_id}/resend", headers=stack.cmms)).status_code == 202
    codes = await sent_codes(stack.sim, number)
    assert len(codes) == 2
    verified = await stack.sim.http.post("/app/v1/verify", json={"signup_id": signup_id, "code": codes[-1]})
    assert verified.status_code == 200, verified.text
    secrets_used += [*codes, wrong, verified.json()["password"]]
    ids += [signup_id, verified.json()["account_id"]]

    dump = await dump_histories(stack.temporal, f'TaskQueue = "{stack.settings.temporal.task_queue}"')
    expected_types = {
        "MvnoOrderWorkflow",
        "AccountWorkflow",
        "CustomerRolloutWorkflow",
        "MessagingRolloutWorkflow",
        "OttSignupWorkflow",
    }
    assert expected_types <= dump.workflow_types
    assert set(dump.encodings) == {"binary/encrypted"}  # as stored: ciphertext only
    for known in ids:  # the decoded histories are readable: a search in them would find a secret
        assert known in dump.decoded, known
    for secret in secrets_used:
        assert secret not in dump.raw, "a secret is in a stored history, id or search attribute"
        assert secret not in dump.decoded, "a secret is in a decoded history"


async def test_registering_the_search_attributes_again_adds_none(stack: Stack) -> None:
    """`python -m core.register_search_attributes` (the Compose file's `migrate` step) on a server that has them."""
    assert await register_search_attributes(stack.temporal) == []


def test_the_registration_command_exits_cleanly(stack: Stack) -> None:
    """The Compose file's `migrate` step runs it before the worker and the API: it must exit 0."""
    environment = os.environ | {"TEMPORAL_ADDRESS": stack.settings.temporal.address, "ENVIRONMENT": "test"}
    done = subprocess.run(
        [sys.executable, "-m", "core.register_search_attributes"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "search attributes: all registered"
