"""MVNO orders end to end: HTTP → API → Temporal dev server → worker → CMMS simulator, over real sockets."""

import asyncio
import json
import time
from typing import Any

import httpx
from sqlmodel import select

from billing.models import Account, Order
from tests.support.catalog import create, new_id, order_body, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack


async def history_json(stack: Stack, order_id: str) -> str:
    history = await stack.temporal.get_workflow_handle(f"order-{order_id}").fetch_history()
    return history.to_json()


async def test_order_provisions_and_the_device_fetches_its_credentials(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Business", "domain": "acme.example"})
    body = order_body(catalog)
    accepted = await submit(stack, body)
    assert accepted["status"] in {"accepted", "provisioning"}
    assert accepted["workflow_id"] == f"order-{body['order_id']}"

    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed" and order["error"] is None
    account_id = order["account_id"]

    account = (await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)).json()
    assert account["status"] == "active" and account["provisioning_state"] == "ok"
    assert account["imei"] == body["account"]["imei"]
    assert "password" not in json.dumps(account).lower()

    device = await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})
    assert device.status_code == 200
    credentials = device.json()
    assert credentials["account_id"] == account_id
    assert credentials["profile"] == "Business" and credentials["domain"] == "acme.example"
    async with stack.sessions() as session:
        stored = await session.get_one(Account, account_id)
    assert credentials["password"] == stored.sip_password and len(stored.sip_password) == 24
    assert stored.sip_password not in await history_json(stack, body["order_id"])


async def test_chosen_account_id_and_password_reach_the_device_but_not_the_history(stack: Stack) -> None:
    catalog = await seed_catalog(stack, reseller_domain="reseller.example")
    password = "Chosen-Secret-0042!"
    body = order_body(catalog, account_id=f"sip-{time.time_ns()}", password=password)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed" and order["account_id"] == body["account"]["account_id"]

    device = (await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})).json()
    assert device["password"] == password
    assert device["domain"] == "reseller.example" and device["profile"] == "Residential"  # the fallbacks
    assert password not in await history_json(stack, body["order_id"])
    async with stack.sessions() as session:
        assert (await session.get_one(Order, body["order_id"])).requested_password is None


async def test_a_repeated_order_provisions_once(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    answers = await asyncio.gather(*(stack.api.post("/v1/orders", json=body, headers=stack.website) for _ in range(5)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert len({a.json()["account_id"] for a in answers}) == 1
    order = await finished(stack, body["order_id"])
    again = await stack.api.post("/v1/orders", json=body, headers=stack.website)
    assert again.status_code == 200 and again.json()["status"] == "completed"

    async with stack.sessions() as session:
        accounts = (await session.exec(select(Account).where(Account.imei == body["account"]["imei"]))).all()
    assert [a.account_id for a in accounts] == [order["account_id"]]
    record = await stack.sim.get_record(order["account_id"])
    assert record is not None and record.version == 1
    listing = await stack.sim.records()
    assert [r.account_id for r in listing if r.imei == body["account"]["imei"]] == [order["account_id"]]


async def test_the_same_order_id_with_another_body_is_a_conflict(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    await submit(stack, body)
    changed = body | {"account": {"imei": order_body(catalog)["account"]["imei"]}}
    response = await stack.api.post("/v1/orders", json=changed, headers=stack.website)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    order = await finished(stack, body["order_id"])
    assert order["imei"] == body["account"]["imei"]


async def test_an_order_waits_out_a_cmms_outage(stack: Stack, faulty_sim: SimulatorProcess) -> None:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    await faulty_sim.set_faults(outage_seconds=4)
    outage_ends = time.time() + 4
    await submit(stack, body)

    async def view() -> dict[str, Any]:
        answer: dict[str, Any] = (await stack.api.get(f"/v1/orders/{body['order_id']}", headers=stack.website)).json()
        return answer

    await eventually(
        view,
        lambda view: view["provisioning_state"] == "retry" and "unavailable" in (view["error"] or ""),
        within=3,
        every=0.2,
        what="the order showing that it is waiting for the CMMS",
    )

    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed" and time.time() >= outage_ends
    record = await faulty_sim.get_record(order["account_id"])
    assert record is not None and record.version == 1


async def test_a_cmms_rejection_fails_the_order_and_leaves_no_account(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    # Its product opens a messaging wallet with the account: the rollback takes the wallet with it.
    starter = {"messaging": {"push_events": True, "initial_wallet": {"amount": 3, "valid_days": 1}}}
    catalog.product_id = new_id("prod")
    await create(stack, "/v1/products", {"product_id": catalog.product_id, "name": "S", "service_policies": starter})
    body = order_body(catalog, account_id=f"rej-{time.time_ns()}")
    # The CMMS already gives this IMEI to an account billing does not know: it refuses the new one (409).
    squatter = {
        "password": "Squatter-Secret-1",
        "imei": body["account"]["imei"],
        "profile": "Residential",
        "domain": "x.example",
    }
    put = await stack.sim.http.put(f"/api/v1/accounts/squatter-{time.time_ns()}", json=squatter, headers=stack.sim.auth)
    assert put.status_code == 201
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "failed"
    assert "rejected" in order["error"].lower() and "imei" in order["error"].lower()
    assert (await stack.api.get(f"/v1/accounts/{order['account_id']}", headers=stack.admin)).status_code == 404
    wallet = await stack.api.get(f"/v1/accounts/{order['account_id']}/wallets/messaging", headers=stack.admin)
    assert wallet.status_code == 404
    assert await stack.sim.get_record(order["account_id"]) is None


async def test_a_failed_order_still_reads_failed_once_a_corrected_order_reuses_its_account_id(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    account_id = f"reuse-{time.time_ns()}"
    refused = order_body(catalog, account_id=account_id)
    squatter = {"password": "Squatter-Secret-2", "imei": refused["account"]["imei"], "profile": "Residential"}
    squatter |= {"domain": "x.example"}
    put = await stack.sim.http.put(f"/api/v1/accounts/squat-{time.time_ns()}", json=squatter, headers=stack.sim.auth)
    assert put.status_code == 201
    await submit(stack, refused)
    failed = await finished(stack, refused["order_id"])
    assert failed["status"] == "failed" and failed["provisioning_state"] == "failed"

    corrected = order_body(catalog, account_id=account_id)  # the account id the failed order freed
    await submit(stack, corrected)
    assert (await finished(stack, corrected["order_id"]))["provisioning_state"] == "ok"
    again = (await stack.api.get(f"/v1/orders/{refused['order_id']}", headers=stack.website)).json()
    assert again["status"] == "failed" and again["provisioning_state"] == "failed"
    assert again["error"] == failed["error"] and "imei" in again["error"].lower()


async def test_a_customer_change_during_provisioning_still_reaches_the_new_account(
    stack: Stack, faulty_sim: SimulatorProcess
) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    body = order_body(catalog)
    await faulty_sim.set_faults(latency_ms=1500)  # the order's CMMS push is slow...
    await submit(stack, body)
    await asyncio.sleep(0.5)
    # ... and the customer changes meanwhile; the rollout leaves the still-pending account to its order.
    patch = {"custom_fields": {"profileName": "Business"}}
    changed = await stack.api.patch(f"/v1/customers/{catalog.customer_id}", json=patch, headers=stack.admin)
    assert changed.status_code == 202
    order = await finished(stack, body["order_id"])
    await faulty_sim.clear_faults()
    assert order["status"] == "completed"
    for _ in range(100):
        record = await faulty_sim.get_record(order["account_id"])
        if record is not None and record.profile == "Business":
            break
        await asyncio.sleep(0.1)
    assert record is not None and record.profile == "Business" and record.version == 2


async def test_concurrent_orders_for_one_imei_admit_exactly_one(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    pairs = [(order_body(catalog), order_body(catalog)) for _ in range(20)]
    for first, second in pairs:
        second["account"] = dict(first["account"])  # another order, the same IMEI

    async def post(body: dict[str, object]) -> httpx.Response:
        return await stack.api.post("/v1/orders", json=body, headers=stack.website)

    answers = await asyncio.gather(*(post(body) for pair in pairs for body in pair))
    for i in range(0, len(answers), 2):
        pair = answers[i : i + 2]
        assert sorted(a.status_code for a in pair) == [202, 409], [a.text for a in pair]
        refused = next(a for a in pair if a.status_code == 409)
        assert refused.headers["content-type"].startswith("application/problem+json")
    async with stack.sessions() as session:
        for first, _ in pairs:
            imei = first["account"]["imei"]
            assert len((await session.exec(select(Order).where(Order.imei == imei))).all()) == 1
    for answer in answers:
        if answer.status_code == 202:
            assert (await finished(stack, answer.json()["order_id"]))["status"] == "completed"
