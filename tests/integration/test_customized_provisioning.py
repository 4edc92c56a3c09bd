"""Customized provisioning end to end: custom fields validated at the API, a customer's change reaching every one of
its devices, account changes reaching the CMMS in order, and the profile and domain fallbacks."""

import asyncio
import json
from typing import Any

from billing.models import Account, AccountStatus, Customer
from contracts.provisioning import ProvisionAccountResult
from contracts.rollouts import rollout_workflow_id
from core.gateway import result_once_started, sync_account
from tests.support.catalog import Catalog, create, new_id, order_body, random_imei, seed_catalog
from tests.support.orders import finished, submit
from tests.support.rollouts import patch_customer, rollout_when, seed_accounts
from tests.support.stack import Stack


async def _ordered(stack: Stack, catalog: Catalog, **account: Any) -> tuple[str, str]:
    """An account made by a real order; returns its id and IMEI."""
    body = order_body(catalog, **account)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    return order["account_id"], body["account"]["imei"]


async def _device(stack: Stack, imei: str) -> dict[str, Any]:
    response = await stack.sim.http.post("/device/v1/provision", json={"imei": imei})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _revision(stack: Stack, customer_id: str) -> int:
    async with stack.sessions() as session:
        return (await session.get_one(Customer, customer_id)).revision


async def test_a_profile_change_reaches_every_device_of_the_customer_and_no_other(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential", "domain": "acme.example"})
    other = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    ordered = [await _ordered(stack, catalog) for _ in range(2)]
    seeded = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 5)
    blocked = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.blocked
    )
    pending = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.pending
    )
    _, bystander_imei = await _ordered(stack, other)
    before = {account_id: (await _device(stack, imei))["version"] for account_id, imei in ordered}

    accepted = await patch_customer(stack.api, catalog.customer_id, {"profileName": "Business"})
    assert accepted["workflow_id"] == rollout_workflow_id(catalog.customer_id)
    assert accepted["revision"] == 2

    progress = await rollout_when(stack.api, catalog.customer_id)
    assert progress == progress | {"revision": 2, "total": 8, "done": 8, "failed": 0, "status": "completed"}
    for account_id, imei in ordered:
        device = await _device(stack, imei)
        assert device["profile"] == "Business" and device["domain"] == "acme.example"
        assert device["version"] > before[account_id]
    for account_id in seeded + blocked:
        record = await stack.sim.get_record(account_id)
        assert record is not None and record.profile == "Business"
    assert (await stack.sim.get_record(blocked[0])).blocked is True  # type: ignore[union-attr]
    assert await stack.sim.get_record(pending[0]) is None  # its order provisions it, not the rollout
    assert (await _device(stack, bystander_imei))["profile"] == "Residential"
    customer = (await stack.api.get(f"/v1/customers/{catalog.customer_id}", headers=stack.admin)).json()
    assert customer["custom_fields"] == {"profileName": "Business", "domain": "acme.example"}


async def test_a_rollout_can_be_run_again_and_changes_nothing_the_second_time(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Business"})
    _, imei = await _ordered(stack, catalog)
    await patch_customer(stack.api, catalog.customer_id, {"profileName": "Residential"})
    first = await rollout_when(stack.api, catalog.customer_id, revision=2)
    version = (await _device(stack, imei))["version"]
    await patch_customer(stack.api, catalog.customer_id, {"profileName": "Residential"})
    second = await rollout_when(stack.api, catalog.customer_id, revision=3)
    assert first["done"] == second["done"] == 1 and second["failed"] == 0
    device = await _device(stack, imei)
    assert device["profile"] == "Residential" and device["version"] == version  # an unchanged record


async def test_the_domain_and_profile_fall_back_to_the_reseller_then_the_defaults(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"domain": "own.example"}, reseller_domain="reseller.example")
    _, imei = await _ordered(stack, catalog)
    device = await _device(stack, imei)
    assert device["domain"] == "own.example" and device["profile"] == stack.settings.provisioning.default_profile

    await patch_customer(stack.api, catalog.customer_id, {"domain": None, "profileName": "Business"})
    await rollout_when(stack.api, catalog.customer_id, revision=2)
    device = await _device(stack, imei)
    assert device["domain"] == "reseller.example" and device["profile"] == "Business"

    plain = await seed_catalog(stack)
    _, plain_imei = await _ordered(stack, plain)
    device = await _device(stack, plain_imei)
    assert (
        device["domain"] == stack.settings.provisioning.default_domain
        and device["profile"] == stack.settings.provisioning.default_profile
    )


async def test_bad_custom_fields_are_refused_and_change_nothing(stack: Stack) -> None:
    narrow_class = new_id("class")
    await create(
        stack,
        "/v1/customer-classes",
        {"customer_class_id": narrow_class, "name": "Narrow", "custom_fields": ["domain"]},
    )
    customer_id = new_id("cust")
    await create(stack, "/v1/customers", {"customer_id": customer_id, "name": "N", "customer_class_id": narrow_class})
    url = f"/v1/customers/{customer_id}"

    not_enabled = await stack.api.patch(url, json={"custom_fields": {"profileName": "Business"}}, headers=stack.admin)
    assert not_enabled.status_code == 422
    assert not_enabled.headers["content-type"].startswith("application/problem+json")
    assert not_enabled.json()["errors"][0]["type"] == "custom_field_not_enabled"

    catalog = await seed_catalog(stack)
    unknown_profile = await stack.api.patch(
        f"/v1/customers/{catalog.customer_id}", json={"custom_fields": {"profileName": "Gold"}}, headers=stack.admin
    )
    assert unknown_profile.status_code == 422
    assert unknown_profile.json()["errors"][0]["type"] == "unknown_profile"
    assert "Business" in unknown_profile.json()["errors"][0]["message"]

    creating = {"customer_id": new_id("cust"), "name": "G", "customer_class_id": narrow_class}
    created = await stack.api.post(
        "/v1/customers",
        json=creating
        | {"customer_class_id": (await _class_with_both(stack)), "custom_fields": {"profileName": "Gold"}},
        headers=stack.admin,
    )
    assert created.status_code == 422

    for body in ({}, {"custom_fields": {"domain": ""}}, {"custom_fields": {}, "colour": "x"}, {"custom_fields": "x"}):
        response = await stack.api.patch(url, json=body, headers=stack.admin)
        assert response.status_code == 422, (body, response.text)
    missing = await stack.api.patch("/v1/customers/nobody", json={"custom_fields": {}}, headers=stack.admin)
    assert missing.status_code == 404
    forbidden = await stack.api.patch(url, json={"custom_fields": {"domain": "a.example"}}, headers=stack.website)
    assert forbidden.status_code == 403

    assert await _revision(stack, customer_id) == 1 and await _revision(stack, catalog.customer_id) == 1
    no_rollout = await stack.api.get(f"{url}/rollout", headers=stack.admin)
    assert no_rollout.status_code == 404


async def _class_with_both(stack: Stack) -> str:
    class_id = new_id("class")
    await create(
        stack,
        "/v1/customer-classes",
        {"customer_class_id": class_id, "name": "Both", "custom_fields": ["profileName", "domain"]},
    )
    return class_id


async def test_account_changes_reach_the_device_in_the_order_they_were_made(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Business"})
    account_id, imei = await _ordered(stack, catalog)
    version = (await _device(stack, imei))["version"]
    url = f"/v1/accounts/{account_id}"

    new_imei = random_imei()
    for body in ({"password": "First-Secret-01"}, {"password": "Second-Secret-02"}, {"imei": new_imei}):
        response = await stack.api.patch(url, json=body, headers=stack.admin)
        assert response.status_code == 202, response.text
        assert response.json()["workflow_id"] == f"account-{account_id}"
        assert "Secret" not in response.text
    await _synced(stack, account_id)
    assert (await stack.sim.http.post("/device/v1/provision", json={"imei": imei})).status_code == 404
    device = await _device(stack, new_imei)
    assert device["password"] == "Second-Secret-02" and device["version"] > version

    blocked = await stack.api.patch(url, json={"blocked": True}, headers=stack.admin)
    assert blocked.status_code == 202 and blocked.json()["status"] == "blocked"
    await _synced(stack, account_id)
    assert (await stack.sim.http.post("/device/v1/provision", json={"imei": new_imei})).status_code == 403
    await stack.api.patch(url, json={"blocked": False}, headers=stack.admin)
    await _synced(stack, account_id)
    unblocked = await _device(stack, new_imei)
    assert unblocked["version"] > device["version"]

    view = (await stack.api.get(url, headers=stack.admin)).json()
    assert view["status"] == "active" and view["imei"] == new_imei and view["provisioning_state"] == "ok"
    assert "Second-Secret-02" not in json.dumps(view)
    history = await stack.temporal.get_workflow_handle(f"account-{account_id}").fetch_history()
    assert "Second-Secret-02" not in history.to_json()


async def _synced(stack: Stack, account_id: str) -> None:
    """Wait until the account's workflow has pushed every change made so far."""
    await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)


async def test_bad_account_changes_are_refused_and_change_nothing(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    account_id, imei = await _ordered(stack, catalog)
    _, other_imei = await _ordered(stack, catalog)
    pending = (
        await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.pending)
    )[0]
    url = f"/v1/accounts/{account_id}"
    cases = [
        ({"imei": "123456789012345"}, 422),  # Luhn
        ({"imei": "12345"}, 422),
        ({"password": "short"}, 422),
        ({"password": "has a space inside"}, 422),
        ({"blocked": "maybe"}, 422),
        ({"status": "active"}, 422),
        ({"imei": other_imei}, 409),
    ]
    for body, status in cases:
        response = await stack.api.patch(url, json=body, headers=stack.admin)
        assert response.status_code == status, (body, response.text)
        assert "short" not in response.text and "has a space" not in response.text
    assert (
        await stack.api.patch(f"/v1/accounts/{pending}", json={"blocked": True}, headers=stack.admin)
    ).status_code == 409
    assert (await stack.api.delete(f"/v1/accounts/{pending}", headers=stack.admin)).status_code == 409
    assert (await stack.api.patch("/v1/accounts/nobody", json={}, headers=stack.admin)).status_code == 404
    assert (await stack.api.delete("/v1/accounts/nobody", headers=stack.admin)).status_code == 404
    async with stack.sessions() as session:
        account = await session.get_one(Account, account_id)
    assert account.revision == 1 and account.imei == imei


async def test_a_terminated_account_leaves_the_cmms_and_stays_terminated(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    account_id, imei = await _ordered(stack, catalog)
    url = f"/v1/accounts/{account_id}"
    first = await stack.api.delete(url, headers=stack.admin)
    assert first.status_code == 202 and first.json()["status"] == "terminated"
    final = await asyncio.wait_for(
        result_once_started(stack.temporal, first.json()["workflow_id"], ProvisionAccountResult), 30
    )
    assert final.removed is True  # the account's workflow ends with the account
    assert await stack.sim.get_record(account_id) is None
    again = await stack.api.delete(url, headers=stack.admin)
    assert again.status_code == 202 and again.json()["revision"] == first.json()["revision"]
    assert (await stack.api.patch(url, json={"blocked": False}, headers=stack.admin)).status_code == 409
    assert (await stack.api.get(url, headers=stack.admin)).json()["status"] == "terminated"
    # Its IMEI is free for a new order.
    _, reused = await _ordered(stack, catalog, imei=imei)
    assert (await _device(stack, reused))["account_id"] != account_id
