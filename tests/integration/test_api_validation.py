"""Bad input gets a clear 4xx problem document and changes nothing; keys and roles are enforced."""

from typing import Any

import pytest

from billing.models import OrderStatus
from tests.support.catalog import Catalog, new_id, order_body, seed_catalog
from tests.support.orders import finished, store_order, submit
from tests.support.problems import problem as _problem
from tests.support.stack import Stack


@pytest.fixture(scope="module")
async def catalog(stack: Stack) -> Catalog:
    return await seed_catalog(stack)


async def _order_absent(stack: Stack, order_id: str) -> None:
    response = await stack.api.get(f"/v1/orders/{order_id}", headers=stack.website)
    _problem(response, 404)


@pytest.mark.parametrize(
    ("imei", "why"),
    [
        ("490154203237517", "check digit"),  # one digit off a valid IMEI
        ("49015420323751", "15 digits"),
        ("4901542032375180", "15 digits"),
        ("49015420323751a", "15 digits"),
    ],
)
async def test_an_invalid_imei_is_refused(stack: Stack, catalog: Catalog, imei: str, why: str) -> None:
    body = order_body(catalog) | {"account": {"imei": imei}}
    problem = _problem(await stack.api.post("/v1/orders", json=body, headers=stack.website), 422)
    assert [e["field"] for e in problem["errors"]] == ["body.account.imei"]
    assert why in problem["errors"][0]["message"]
    await _order_absent(stack, body["order_id"])


@pytest.mark.parametrize("field", ["customer_id", "product_id"])
async def test_an_unknown_customer_or_product_is_refused(stack: Stack, catalog: Catalog, field: str) -> None:
    body = order_body(catalog) | {field: new_id("nope")}
    problem = _problem(await stack.api.post("/v1/orders", json=body, headers=stack.website), 422)
    assert problem["errors"][0]["field"] == field
    await _order_absent(stack, body["order_id"])


@pytest.mark.parametrize("missing", ["order_id", "customer_id", "product_id", "account"])
async def test_a_missing_field_is_named(stack: Stack, catalog: Catalog, missing: str) -> None:
    body = order_body(catalog)
    del body[missing]
    problem = _problem(await stack.api.post("/v1/orders", json=body, headers=stack.website), 422)
    assert f"body.{missing}" in [e["field"] for e in problem["errors"]]


async def test_a_weak_password_is_refused_without_being_echoed(stack: Stack, catalog: Catalog) -> None:
    body = order_body(catalog, password="short 1")
    response = await stack.api.post("/v1/orders", json=body, headers=stack.website)
    problem = _problem(response, 422)
    assert "short 1" not in response.text
    assert problem["errors"][0]["field"] == "body.account.password"
    await _order_absent(stack, body["order_id"])


async def test_malformed_json_is_a_400(stack: Stack) -> None:
    headers = stack.website | {"content-type": "application/json"}
    _problem(await stack.api.post("/v1/orders", content=b'{"order_id": ', headers=headers), 400)


async def test_an_imei_already_in_use_is_a_conflict(stack: Stack, catalog: Catalog) -> None:
    first = order_body(catalog)
    assert (await stack.api.post("/v1/orders", json=first, headers=stack.website)).status_code == 202
    second = order_body(catalog) | {"account": first["account"]}
    _problem(await stack.api.post("/v1/orders", json=second, headers=stack.website), 409)
    await _order_absent(stack, second["order_id"])


async def test_a_conflict_says_what_is_taken(stack: Stack, catalog: Catalog) -> None:
    first = order_body(catalog, account_id=new_id("acct"))
    await submit(stack, first)
    await finished(stack, first["order_id"])
    taken = first["account"]
    cases = [
        (order_body(catalog, account_id=taken["account_id"]), f"account {taken['account_id']!r} already exists"),
        (order_body(catalog, imei=taken["imei"]), f"IMEI {taken['imei']} already belongs to an account"),
    ]
    # An order being provisioned holds its IMEI too (stored directly, with no workflow, so it stays in
    # flight for as long as the test looks; `provisioning`, so the API's late starts leave it alone).
    pending = await store_order(stack, catalog, status=OrderStatus.provisioning)
    in_flight = f"IMEI {pending.imei} is being provisioned by order {pending.order_id!r}"
    cases.append((order_body(catalog, imei=pending.imei), in_flight))
    for body, detail in cases:
        problem = _problem(await stack.api.post("/v1/orders", json=body, headers=stack.website), 409)
        assert problem["detail"] == detail
        await _order_absent(stack, body["order_id"])


async def test_keys_and_roles(stack: Stack, catalog: Catalog) -> None:
    body = order_body(catalog)
    problem = _problem(await stack.api.post("/v1/orders", json=body), 401)
    assert "Bearer" in problem["detail"]
    wrong = {"Authorization": "Bearer not-a-key"}
    _problem(await stack.api.post("/v1/orders", json=body, headers=wrong), 401)
    _problem(await stack.api.post("/v1/orders", json=body, headers=stack.cmms), 403)
    _problem(await stack.api.get(f"/v1/customers/{catalog.customer_id}", headers=stack.website), 403)
    await _order_absent(stack, body["order_id"])
    # admin may do everything
    assert (await stack.api.post("/v1/orders", json=body, headers=stack.admin)).status_code == 202
    assert (await stack.api.get("/healthz")).status_code == 200


async def test_admin_resources_validate_and_refuse_duplicates(stack: Stack, catalog: Catalog) -> None:
    reseller = {"reseller_id": new_id("res"), "name": "Reseller", "domain": "not a domain"}
    _problem(await stack.api.post("/v1/resellers", json=reseller, headers=stack.admin), 422)
    reseller["domain"] = "Voice.Example.COM"
    created = await stack.api.post("/v1/resellers", json=reseller, headers=stack.admin)
    assert created.status_code == 201 and created.json()["domain"] == "voice.example.com"
    _problem(await stack.api.post("/v1/resellers", json=reseller, headers=stack.admin), 409)

    klass = {"customer_class_id": new_id("cls"), "name": "Plain", "custom_fields": ["colour"]}
    _problem(await stack.api.post("/v1/customer-classes", json=klass, headers=stack.admin), 422)
    klass["custom_fields"] = ["domain"]
    assert (await stack.api.post("/v1/customer-classes", json=klass, headers=stack.admin)).status_code == 201

    customer: dict[str, Any] = {
        "customer_id": new_id("cust"),
        "name": "Bob",
        "customer_class_id": klass["customer_class_id"],
        "custom_fields": {"profileName": "Business"},  # not enabled on this class
    }
    problem = _problem(await stack.api.post("/v1/customers", json=customer, headers=stack.admin), 422)
    assert problem["errors"][0]["field"] == "custom_fields.profileName"
    _problem(await stack.api.get(f"/v1/customers/{customer['customer_id']}", headers=stack.admin), 404)
    customer["custom_fields"] = {"domain": "bob.example"}
    customer["reseller_id"] = new_id("ghost")
    _problem(await stack.api.post("/v1/customers", json=customer, headers=stack.admin), 422)
    del customer["reseller_id"]
    created = await stack.api.post("/v1/customers", json=customer, headers=stack.admin)
    assert created.status_code == 201 and created.json()["custom_fields"] == {"domain": "bob.example"}

    product = {"product_id": new_id("prod"), "name": "P", "service_policies": {"messaging": {"push_events": "x"}}}
    _problem(await stack.api.post("/v1/products", json=product, headers=stack.admin), 422)
    extra = order_body(catalog) | {"unexpected": 1}
    _problem(await stack.api.post("/v1/orders", json=extra, headers=stack.website), 422)
