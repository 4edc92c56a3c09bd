"""Edits an operator makes: a customer's reseller and class, a reseller's name and domain (the accounts
follow in the CMMS), deleting a customer; each recorded in the audit trail with who and when, and no
secret in it."""

from typing import Any

from billing.models import Customer, OrderStatus
from tests.support.catalog import create, new_id, order_body, seed_catalog
from tests.support.orders import store_order
from tests.support.problems import problem
from tests.support.rollouts import rollout_when, seed_accounts
from tests.support.stack import Stack

ADMIN_LABEL = "key3:admin"  # the stack's admin key is the third of API_KEYS


async def _patch(stack: Stack, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    response = await stack.api.patch(path, json=body, headers=stack.admin)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def _reseller(stack: Stack, domain: str) -> str:
    reseller_id = new_id("res")
    await create(stack, "/v1/resellers", {"reseller_id": reseller_id, "name": "R", "domain": domain})
    return reseller_id


async def _domains(stack: Stack, account_ids: list[str]) -> set[str]:
    records = [await stack.sim.get_record(account_id) for account_id in account_ids]
    return {record.domain for record in records if record is not None}


async def _stored(stack: Stack, customer_id: str) -> Customer:
    async with stack.sessions() as session:
        return await session.get_one(Customer, customer_id)


async def test_a_customer_moved_to_another_reseller_is_reprovisioned(stack: Stack) -> None:
    catalog = await seed_catalog(stack, reseller_domain="first.example")
    second = await _reseller(stack, "second.example")
    accounts = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 2)
    url = f"/v1/customers/{catalog.customer_id}"

    moved = await _patch(stack, url, {"reseller_id": second}, 202)
    assert moved["reseller_id"] == second and moved["revision"] == 2
    assert moved["workflow_id"] == f"rollout-{catalog.customer_id}" and moved["progress_url"] == f"{url}/rollout"
    await rollout_when(stack.api, catalog.customer_id, revision=2)
    assert await _domains(stack, accounts) == {"second.example"}

    renamed = await _patch(stack, url, {"name": "Ada Lovelace Ltd"}, 200)  # nothing the CMMS holds
    assert renamed["workflow_id"] is None and renamed["revision"] == 2 and renamed["name"] == "Ada Lovelace Ltd"

    alone = await _patch(stack, url, {"reseller_id": None}, 202)
    assert alone["reseller_id"] is None and alone["revision"] == 3
    await rollout_when(stack.api, catalog.customer_id, revision=3)
    assert await _domains(stack, accounts) == {stack.settings.provisioning.default_domain}


async def test_a_new_class_must_enable_the_custom_fields_the_customer_keeps(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"domain": "own.example"})
    narrow = new_id("class")
    narrow_class = {"customer_class_id": narrow, "name": "N", "custom_fields": ["profileName"]}
    await create(stack, "/v1/customer-classes", narrow_class)
    url = f"/v1/customers/{catalog.customer_id}"
    before = await _stored(stack, catalog.customer_id)

    refused = problem(await stack.api.patch(url, json={"customer_class_id": narrow}, headers=stack.admin), 422)
    assert refused["errors"][0]["field"] == "custom_fields.domain"
    for body in (
        {"customer_class_id": new_id("nope")},
        {"reseller_id": new_id("nope")},
        {"customer_class_id": None},
        {},
        {"colour": "blue"},
    ):
        problem(await stack.api.patch(url, json=body, headers=stack.admin), 422)
    problem(await stack.api.patch("/v1/customers/nobody", json={"name": "x"}, headers=stack.admin), 404)
    after = await _stored(stack, catalog.customer_id)
    assert (after.customer_class_id, after.revision, after.custom_fields) == (
        before.customer_class_id,
        1,
        {"domain": "own.example"},
    )

    moved = await _patch(stack, url, {"customer_class_id": narrow, "custom_fields": {"domain": None}}, 202)
    assert moved["customer_class_id"] == narrow and moved["custom_fields"] == {} and moved["revision"] == 2


async def test_a_resellers_new_domain_reaches_the_accounts_of_customers_without_their_own(stack: Stack) -> None:
    reseller_id = await _reseller(stack, "old.example")
    class_id = new_id("class")
    await create(
        stack, "/v1/customer-classes", {"customer_class_id": class_id, "name": "C", "custom_fields": ["domain"]}
    )
    follows, keeps = new_id("cust"), new_id("cust")
    own = {"custom_fields": {"domain": "own.example"}}
    for customer_id, extra in ((follows, {}), (keeps, own)):
        body = {"customer_id": customer_id, "name": "C", "customer_class_id": class_id, "reseller_id": reseller_id}
        await create(stack, "/v1/customers", body | extra)
    await create(stack, "/v1/products", {"product_id": (product_id := new_id("prod")), "name": "P"})
    following = await seed_accounts(stack.sessions, follows, product_id, 2)
    url = f"/v1/resellers/{reseller_id}"

    changed = await _patch(stack, url, {"domain": "New.Example"}, 202)
    assert changed["domain"] == "new.example" and changed["customers"] == [follows]
    await rollout_when(stack.api, follows, revision=2)
    assert await _domains(stack, following) == {"new.example"}
    assert (await _stored(stack, keeps)).revision == 1

    renamed = await _patch(stack, url, {"name": "Renamed"}, 200)
    assert renamed["customers"] == [] and renamed["name"] == "Renamed" and renamed["domain"] == "new.example"
    listed = (await stack.api.get(f"/v1/resellers/{reseller_id}", headers=stack.admin)).json()
    assert listed["name"] == "Renamed"
    for body in ({}, {"domain": "not a domain"}, {"reseller_id": "x"}):
        problem(await stack.api.patch(url, json=body, headers=stack.admin), 422)
    problem(await stack.api.patch("/v1/resellers/nobody", json={"name": "x"}, headers=stack.admin), 404)
    problem(await stack.api.patch(url, json={"name": "x"}, headers=stack.website), 403)


async def test_a_customer_is_deleted_only_without_live_accounts(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    [account_id] = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1)
    url = f"/v1/customers/{catalog.customer_id}"
    live = problem(await stack.api.delete(url, headers=stack.admin), 409)
    assert account_id in live["detail"]
    assert (await stack.api.delete(f"/v1/accounts/{account_id}", headers=stack.admin)).status_code == 202

    busy = await seed_catalog(stack)
    await store_order(stack, busy, status=OrderStatus.provisioning)
    problem(await stack.api.delete(f"/v1/customers/{busy.customer_id}", headers=stack.admin), 409)
    problem(await stack.api.delete(f"/v1/customers/{stack.settings.signups.ott_customer_id}", headers=stack.admin), 409)

    deleted = await stack.api.delete(url, headers=stack.admin)
    assert deleted.status_code == 204 and deleted.content == b""
    problem(await stack.api.get(url, headers=stack.admin), 404)
    problem(await stack.api.delete(url, headers=stack.admin), 404)
    problem(await stack.api.patch(url, json={"name": "x"}, headers=stack.admin), 404)
    listed = (await stack.api.get("/v1/customers", params={"limit": 500}, headers=stack.admin)).json()["items"]
    assert catalog.customer_id not in [c["customer_id"] for c in listed]
    order = await stack.api.post("/v1/orders", json=order_body(catalog), headers=stack.website)
    assert problem(order, 422)["errors"][0]["field"] == "customer_id"
    # Its account and orders stay on record.
    assert (await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)).json()["status"] == "terminated"


async def _trail(stack: Stack, obj: str, limit: int = 500) -> list[dict[str, Any]]:
    response = await stack.api.get("/v1/audit", params={"object": obj, "limit": limit}, headers=stack.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_every_edit_is_in_the_audit_trail_with_who_and_when_and_no_secret(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    url = f"/v1/customers/{catalog.customer_id}"
    await _patch(stack, url, {"custom_fields": {"profileName": "Business"}, "name": "Grace"}, 202)
    assert (await stack.api.delete(url, headers=stack.admin)).status_code == 204
    trail = await _trail(stack, f"customer:{catalog.customer_id}")
    assert [entry["action"] for entry in trail] == ["create", "update", "delete"]
    assert {entry["actor"] for entry in trail} == {ADMIN_LABEL}
    assert trail[0]["changes"]["customer_class_id"]["from"] is None
    assert trail[1]["changes"] == {
        "custom_fields": {"from": {"profileName": "Residential"}, "to": {"profileName": "Business"}},
        "name": {"from": "Ada", "to": "Grace"},
    }
    assert trail[0]["created_at"] < trail[1]["created_at"] < trail[2]["created_at"]
    first = await stack.api.get(
        "/v1/audit", params={"object": f"customer:{catalog.customer_id}", "limit": 1}, headers=stack.admin
    )
    assert [e["action"] for e in first.json()["items"]] == ["create"] and first.json()["next"]
    params = {"object": f"customer:{catalog.customer_id}", "limit": 1, "cursor": first.json()["next"]}
    second = await stack.api.get("/v1/audit", params=params, headers=stack.admin)
    assert [e["action"] for e in second.json()["items"]] == ["update"]

    other = await seed_catalog(stack)
    [account_id] = await seed_accounts(stack.sessions, other.customer_id, other.product_id, 1)
    secret = "Audit-Secret-0077"
    changed = await stack.api.patch(
        f"/v1/accounts/{account_id}", json={"password": secret, "blocked": True}, headers=stack.admin
    )
    assert changed.status_code == 202
    response = await stack.api.get("/v1/audit", params={"object": f"account:{account_id}"}, headers=stack.admin)
    assert secret not in response.text
    [entry] = response.json()["items"]
    assert entry["changes"] == {"password": "(changed)", "status": {"from": "active", "to": "blocked"}}
    policy = await stack.api.put(
        f"/v1/accounts/{account_id}/service-policies/messaging", json={"push_events": True}, headers=stack.admin
    )
    assert policy.status_code == 200, policy.text
    [_, entry] = await _trail(stack, f"account:{account_id}")
    assert entry["changes"] == {"service_policies": {"from": {}, "to": {"messaging": {"push_events": True}}}}

    await _patch(stack, f"/v1/products/{other.product_id}", {"name": "Mobile M"}, 200)
    product_trail = await _trail(stack, f"product:{other.product_id}")
    assert [e["action"] for e in product_trail] == ["create", "update"]
    assert product_trail[1]["changes"] == {"name": {"from": "Mobile S", "to": "Mobile M"}}

    problem(await stack.api.get("/v1/audit", params={"object": "password:x"}, headers=stack.admin), 422)
    problem(await stack.api.get("/v1/audit", headers=stack.admin), 422)
    assert await _trail(stack, "customer:nobody") == []
