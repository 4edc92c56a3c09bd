"""Every list answers `{items, next}` in a stable order, pages by cursor without skipping or repeating a
row (also among rows created at the same instant), filters as documented, and refuses bad paging."""

import base64
import json
from datetime import timedelta
from typing import Any

from billing.db import transaction
from billing.models import Account, AccountStatus, Order, OrderStatus, PushStatus, Signup, utcnow
from contracts.signups import SignupState
from tests.support.catalog import Catalog, create, new_id, random_imei, seed_catalog
from tests.support.orders import store_order
from tests.support.problems import problem
from tests.support.rollouts import seed_accounts
from tests.support.signups import random_mobile
from tests.support.stack import Stack


async def walk(stack: Stack, path: str, headers: dict[str, str], limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page; each page but the last is full."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await stack.api.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next"}
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit


async def test_orders_by_customer_status_and_time_page_in_creation_order(stack: Stack) -> None:
    catalog, other = await seed_catalog(stack), await seed_catalog(stack)
    mine = [await store_order(stack, catalog, status=OrderStatus.provisioning) for _ in range(5)]
    await store_order(stack, other, status=OrderStatus.provisioning)
    async with transaction(stack.sessions) as session:
        failed = await session.get_one(Order, mine[4].order_id)
        failed.status, failed.error = OrderStatus.failed, "refused by the CMMS"
        session.add(failed)

    listed = await walk(stack, "/v1/orders", stack.website, 2, customer_id=catalog.customer_id)
    assert [o["order_id"] for o in listed] == [o.order_id for o in mine]
    newest = await walk(stack, "/v1/orders", stack.website, 2, customer_id=catalog.customer_id, order="desc")
    assert [o["order_id"] for o in newest] == [o.order_id for o in reversed(mine)]
    assert listed[4]["status"] == "failed" and listed[4]["error"] == "refused by the CMMS"
    assert {o["customer_id"] for o in listed} == {catalog.customer_id}

    failed_only = await walk(stack, "/v1/orders", stack.admin, 10, customer_id=catalog.customer_id, status="failed")
    assert [o["order_id"] for o in failed_only] == [mine[4].order_id]
    since = mine[2].created_at.isoformat()
    recent = await walk(stack, "/v1/orders", stack.website, 10, customer_id=catalog.customer_id, created_since=since)
    assert [o["order_id"] for o in recent] == [o.order_id for o in mine[2:]]


async def test_paging_is_exact_among_rows_created_at_the_same_instant(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    ids = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 7)
    same = utcnow()
    async with transaction(stack.sessions) as session:
        for account_id in ids:
            account = await session.get_one(Account, account_id)
            account.created_at = same
            session.add(account)
    for limit in (1, 2, 3, 7, 500):
        listed = await walk(stack, "/v1/accounts", stack.admin, limit, customer_id=catalog.customer_id)
        assert [a["account_id"] for a in listed] == ids  # seed_accounts answers them sorted: the tie-break
        newest = await walk(stack, "/v1/accounts", stack.admin, limit, customer_id=catalog.customer_id, order="desc")
        assert [a["account_id"] for a in newest] == ids[::-1]


async def test_accounts_are_found_by_imei_phone_number_product_and_status(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    [active] = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1)
    [blocked] = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.blocked
    )
    number, other_number = random_mobile(), random_mobile()
    async with transaction(stack.sessions) as session:
        imei = (await session.get_one(Account, active)).imei
        ott = Account(
            account_id=number.lstrip("+"),
            customer_id=catalog.customer_id,
            product_id=catalog.product_id,
            imei=None,
            sip_password="pw-ott-account",
            status=AccountStatus.active,
            provisioning_state=PushStatus.ok,
            created_by="test",
        )
        session.add(ott)
        # A number whose signup was verified into an account of another id.
        expires = utcnow() + timedelta(minutes=10)
        session.add(
            Signup(
                signup_id=new_id("su"),
                phone_number=other_number,
                status=SignupState.verified,
                account_id=blocked,
                expires_at=expires,
            )
        )

    async def ids(**params: Any) -> list[str]:
        return [a["account_id"] for a in await walk(stack, "/v1/accounts", stack.admin, 50, **params)]

    assert await ids(imei=imei) == [active]
    assert await ids(imei=random_imei()) == []
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"  # as a caller reads it out
    assert await ids(phone_number=spaced) == [number.lstrip("+")]
    assert await ids(phone_number=other_number) == [blocked]
    assert await ids(customer_id=catalog.customer_id, status="blocked") == [blocked]
    assert len(await ids(product_id=catalog.product_id)) == 3
    listed = (await stack.api.get("/v1/accounts", params={"imei": imei}, headers=stack.admin)).json()["items"][0]
    assert "sip_password" not in listed and "password" not in str(listed)


async def test_customers_by_class_and_reseller_products_and_resellers(stack: Stack) -> None:
    reseller_id, class_id = new_id("res"), new_id("class")
    await create(stack, "/v1/resellers", {"reseller_id": reseller_id, "name": "R", "domain": "r.example"})
    await create(stack, "/v1/customer-classes", {"customer_class_id": class_id, "name": "C", "custom_fields": []})
    made = []
    for n in range(3):
        body: dict[str, Any] = {"customer_id": new_id("cust"), "name": f"C{n}", "customer_class_id": class_id}
        if n != 1:
            body["reseller_id"] = reseller_id
        made.append((await create(stack, "/v1/customers", body))["customer_id"])
    by_class = await walk(stack, "/v1/customers", stack.admin, 2, customer_class_id=class_id)
    assert [c["customer_id"] for c in by_class] == made
    by_reseller = await walk(stack, "/v1/customers", stack.admin, 1, reseller_id=reseller_id)
    assert [c["customer_id"] for c in by_reseller] == [made[0], made[2]]
    assert reseller_id in [r["reseller_id"] for r in await walk(stack, "/v1/resellers", stack.admin, 3)]
    catalog: Catalog = await seed_catalog(stack)
    products = await walk(stack, "/v1/products", stack.admin, 2)
    assert products[-1]["product_id"] == catalog.product_id  # the newest last


async def test_signups_by_number_and_status(stack: Stack) -> None:
    number = random_mobile()
    expires = utcnow() + timedelta(minutes=10)
    ids = [new_id("su"), new_id("su")]
    async with transaction(stack.sessions) as session:
        session.add(Signup(signup_id=ids[0], phone_number=number, status=SignupState.expired, expires_at=expires))
        session.add(Signup(signup_id=ids[1], phone_number=number, status=SignupState.pending, expires_at=expires))
        session.add(Signup(signup_id=new_id("su"), phone_number=random_mobile(), expires_at=expires))
    for headers, shown in ((stack.admin, number), (stack.cmms, None)):
        found = await walk(stack, "/v1/signups", headers, 1, phone_number=number)
        assert [s["signup_id"] for s in found] == ids
        assert {s["phone_number"] for s in found} == {shown}  # the number for support only
    pending = await walk(stack, "/v1/signups", stack.admin, 500, phone_number=number, status="pending")
    assert [s["signup_id"] for s in pending] == [ids[1]]
    problem(await stack.api.get("/v1/signups", headers=stack.website), 403)
    bad = problem(await stack.api.get("/v1/signups", params={"phone_number": "12"}, headers=stack.admin), 422)
    assert bad["errors"][0]["field"] == "phone_number"


async def test_roles_and_bad_paging_are_refused(stack: Stack) -> None:
    problem(await stack.api.get("/v1/orders", headers=stack.cmms), 403)
    for path in ("/v1/accounts", "/v1/customers", "/v1/products", "/v1/resellers", "/v1/audit?object=customer:x"):
        problem(await stack.api.get(path, headers=stack.website), 403)
    problem(await stack.api.get("/v1/orders"), 401)
    for params in ({"limit": 501}, {"limit": 0}, {"cursor": "not-a-cursor"}, {"created_since": "yesterday"}):
        body = problem(await stack.api.get("/v1/orders", params=params, headers=stack.admin), 422)
        assert body["errors"], body
    # A cursor of one list is refused by another, and a naive time is refused.
    for _ in range(2):
        await seed_catalog(stack)
    page = (await stack.api.get("/v1/customers", params={"limit": 1}, headers=stack.admin)).json()
    assert page["next"]
    problem(await stack.api.get("/v1/products", params={"cursor": page["next"]}, headers=stack.admin), 422)
    backwards = {"cursor": page["next"], "order": "desc"}  # a cursor keeps the direction it was made for
    problem(await stack.api.get("/v1/customers", params=backwards, headers=stack.admin), 422)
    problem(await stack.api.get("/v1/customers", params={"order": "sideways"}, headers=stack.admin), 422)
    # Cursors made by hand: a key of the wrong type, a time without a zone, not a triple.
    for forged in (["orders", "2026-01-01T00:00:00+00:00", 5], ["orders", "2026-01-01T00:00:00", "x"], {"a": 1}):
        cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        problem(await stack.api.get("/v1/orders", params={"cursor": cursor}, headers=stack.admin), 422)
    naive = {"created_since": "2026-01-01T00:00:00"}
    problem(await stack.api.get("/v1/orders", params=naive, headers=stack.admin), 422)
    problem(await stack.api.get("/v1/accounts", params={"imei": "123"}, headers=stack.admin), 422)
    problem(await stack.api.get("/v1/accounts", params={"status": "sleeping"}, headers=stack.admin), 422)


async def test_the_lists_are_documented(stack: Stack) -> None:
    schema = (await stack.api.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/v1/orders", "/v1/accounts", "/v1/customers", "/v1/products", "/v1/resellers", "/v1/signups"):
        listing = paths[path]["get"]
        limit = next(p for p in listing["parameters"] if p["name"] == "limit")
        assert limit["schema"]["maximum"] == 500 and limit["schema"]["minimum"] == 1
        assert any(p["name"] == "cursor" for p in listing["parameters"])
        ref = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(model["properties"]) == {"items", "next"}
    names = {p["name"] for p in paths["/v1/accounts"]["get"]["parameters"]}
    assert {"customer_id", "product_id", "status", "imei", "phone_number"} <= names
