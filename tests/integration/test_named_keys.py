"""Named API keys (`name@key:website`): least privilege for the websites. A named website key reads and
lists only the orders it sent (their IMEIs, which the CMMS trades for credentials, included); another
key's order is not there for it (404) and its `order_id` is taken (409); two keys under one name (a
rotation) are one website. Orders without a name stay with admin and the unnamed website keys. Over HTTP
to the real API, on SQLite and PostgreSQL."""

import logging
from typing import Any

import httpx
import pytest

from billing.models import OrderStatus
from tests.support.catalog import Catalog, order_body, seed_catalog
from tests.support.database import sqlite_database
from tests.support.orders import store_order
from tests.support.production import PRODUCTION
from tests.support.simulator import SimulatorProcess
from tests.support.stack import SHOP_NEXT_KEY, Stack, serving_api, stack_settings


async def _post(stack: Stack, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await stack.api.post("/v1/orders", json=body, headers=headers)


async def _ordered(stack: Stack, catalog: Catalog, headers: dict[str, str]) -> dict[str, Any]:
    body = order_body(catalog)
    response = await _post(stack, body, headers)
    assert response.status_code == 202, response.text
    return body


async def _listed(stack: Stack, headers: dict[str, str], **query: str) -> dict[str, dict[str, Any]]:
    response = await stack.api.get("/v1/orders", params={"limit": "500"} | query, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next"] is None
    return {item["order_id"]: item for item in page["items"]}


async def test_a_named_key_reads_and_lists_only_its_own_orders(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    shops = await _ordered(stack, catalog, stack.shop)
    others = await _ordered(stack, catalog, stack.other_shop)
    unnamed = await _ordered(stack, catalog, stack.website)

    mine = await stack.api.get(f"/v1/orders/{shops['order_id']}", headers=stack.shop)
    assert mine.status_code == 200 and mine.json()["imei"] == shops["account"]["imei"], mine.text
    for order in (others, unnamed):
        theirs = await stack.api.get(f"/v1/orders/{order['order_id']}", headers=stack.shop)
        assert theirs.status_code == 404, theirs.text
        assert theirs.headers["content-type"] == "application/problem+json"
        assert order["account"]["imei"] not in theirs.text

    # The list, unfiltered (every order of the database) or by this customer: the shop's own, IMEIs included.
    everything = await _listed(stack, stack.shop)
    assert shops["order_id"] in everything and everything[shops["order_id"]]["imei"] == shops["account"]["imei"]
    assert others["order_id"] not in everything and unnamed["order_id"] not in everything
    assert set(await _listed(stack, stack.shop, customer_id=catalog.customer_id)) == {shops["order_id"]}
    assert set(await _listed(stack, stack.other_shop, customer_id=catalog.customer_id)) == {others["order_id"]}

    # Admin and an unnamed website key read every order, as before keys had names.
    for headers in (stack.admin, stack.website):
        assert set(await _listed(stack, headers, customer_id=catalog.customer_id)) == {
            shops["order_id"],
            others["order_id"],
            unnamed["order_id"],
        }
        for order in (shops, others, unnamed):
            assert (await stack.api.get(f"/v1/orders/{order['order_id']}", headers=headers)).status_code == 200


async def test_another_keys_order_id_is_taken_and_the_same_name_repeats_its_own(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    shops = await _ordered(stack, catalog, stack.shop)

    # The same body from another website: refused, telling nothing of the order.
    taken = await _post(stack, shops, stack.other_shop)
    assert taken.status_code == 409, taken.text
    assert taken.headers["content-type"] == "application/problem+json"
    assert shops["account"]["imei"] not in taken.text and catalog.customer_id not in taken.text

    # The shop's other key (a rotation): the same website, so the same order again, as any repeat.
    again = await _post(stack, shops, stack.as_role(SHOP_NEXT_KEY))
    assert again.status_code in (200, 202) and again.json()["order_id"] == shops["order_id"], again.text
    assert (await _post(stack, shops, stack.shop)).status_code in (200, 202)
    changed = await _post(stack, shops | {"product_id": "another-product"}, stack.shop)
    assert changed.status_code == 409, changed.text
    read = await stack.api.get(f"/v1/orders/{shops['order_id']}", headers=stack.as_role(SHOP_NEXT_KEY))
    assert read.status_code == 200 and read.json()["imei"] == shops["account"]["imei"]

    # An order the rotation's new key sent is the shop's too.
    rotated = await _ordered(stack, catalog, stack.as_role(SHOP_NEXT_KEY))
    assert (await stack.api.get(f"/v1/orders/{rotated['order_id']}", headers=stack.shop)).status_code == 200
    listed = await _listed(stack, stack.shop, customer_id=catalog.customer_id)
    assert set(listed) == {shops["order_id"], rotated["order_id"]}


async def test_an_unnamed_keys_order_is_not_a_named_keys_to_repeat(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    unnamed = await _ordered(stack, catalog, stack.website)
    assert (await _post(stack, unnamed, stack.shop)).status_code == 409
    # The unnamed key and admin repeat it as before.
    assert (await _post(stack, unnamed, stack.website)).status_code in (200, 202)
    assert (await _post(stack, unnamed, stack.admin)).status_code in (200, 202)


async def test_a_named_key_is_not_told_which_order_holds_an_imei(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    pending = await store_order(stack, catalog, status=OrderStatus.provisioning)  # stays in flight
    refused = await _post(stack, order_body(catalog, imei=pending.imei), stack.shop)
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == f"IMEI {pending.imei} is being provisioned by another order"


async def test_production_warns_of_each_unnamed_website_key_at_start(
    dev_server: str, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.auth")
    keys = f"{'w' * 32}:website,shop@{'s' * 32}:website,{'a' * 32}:admin,{'r' * 32}:cmms+website"
    values = PRODUCTION | {"api_keys": keys, "cmms_url": sim.base_url}
    settings = stack_settings(dev_server, sqlite_database(tmp_path_factory.mktemp("named-keys")), sim, **values)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url) as api:
        assert (await api.get("/healthz")).status_code == 200
    warned = [r.getMessage() for r in caplog.records if "unnamed website key" in r.getMessage()]
    assert len(warned) == 2 and "entry 1 " in warned[0] and "entry 4 " in warned[1], warned
    assert not any(key in message for message in warned for key in ("w" * 32, "r" * 32))
