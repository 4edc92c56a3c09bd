"""Accounts with wallets for the messaging tests (messaging by wallet), and a wait on the CMMS's record."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from billing.db import SessionMaker, transaction
from billing.models import Account, AccountStatus
from contracts.cmms import CmmsRecord
from tests.support.catalog import Catalog, create, new_id, order_body, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack


async def product(stack: Stack, *, push_events: bool | None) -> str:
    """A product with a messaging policy (`push_events`), or none at all (None)."""
    product_id = new_id("prod")
    body: dict[str, Any] = {"product_id": product_id, "name": "Messaging"}
    if push_events is not None:
        body["service_policies"] = {"messaging": {"push_events": push_events}}
    await create(stack, "/v1/products", body)
    return product_id


async def ordered_account(stack: Stack, *, push_events: bool | None = None, product_id: str | None = None) -> str:
    """An account ordered (and so in the CMMS) under `product_id`, or a new product with that messaging policy."""
    catalog = await seed_catalog(stack)
    product_id = product_id or await product(stack, push_events=push_events)
    catalog = Catalog(customer_id=catalog.customer_id, product_id=product_id)
    body = order_body(catalog)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    account_id: str = order["account_id"]
    return account_id


async def billing_only_account(
    sessions: SessionMaker, catalog: Catalog, status: AccountStatus = AccountStatus.active
) -> str:
    """An account in billing alone (never pushed to the CMMS), for tests of the wallet ledger itself."""
    account_id = new_id("acct")
    async with transaction(sessions) as session:
        session.add(
            Account(
                account_id=account_id,
                customer_id=catalog.customer_id,
                product_id=catalog.product_id,
                sip_password="not-used-in-this-test",
                status=status,
                created_by="test",
            )
        )
    return account_id


async def open_wallet(stack: Stack, account_id: str, balance: int, **extra: Any) -> dict[str, Any]:
    body = {"service": "messaging", "balance": balance} | extra
    response = await stack.api.post(f"/v1/accounts/{account_id}/wallets", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def move(stack: Stack, account_id: str, kind: str, amount: int, **extra: Any) -> httpx.Response:
    """`POST .../wallets/messaging/{kind}` (`top-ups` or `charges`) as admin, a new movement each call
    (its own Idempotency-Key)."""
    path = f"/v1/accounts/{account_id}/wallets/messaging/{kind}"
    return await stack.api.post(path, json={"amount": amount} | extra, headers=stack.admin | new_idempotency_key())


def new_idempotency_key() -> dict[str, str]:
    """The header of a new money movement."""
    return {"Idempotency-Key": uuid.uuid4().hex}


async def wait_for_record(
    sim: SimulatorProcess, account_id: str, accept: Callable[[CmmsRecord], bool], within: float = 30.0
) -> CmmsRecord:
    """The CMMS's record once `accept` holds for it (reads failing during an injected outage are retried)."""

    async def record() -> CmmsRecord | None:
        try:
            return await sim.get_record(account_id)
        except httpx.HTTPStatusError:
            return None

    found = await eventually(
        record, lambda seen: seen is not None and accept(seen), within=within, what=f"the CMMS record of {account_id}"
    )
    assert found is not None
    return found


async def wallet_view(stack: Stack, account_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=stack.admin)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def wait_for_wallet(stack: Stack, account_id: str, messaging: str, within: float = 30.0) -> dict[str, Any]:
    """The wallet's view once it shows `messaging` as confirmed by the CMMS."""
    return await eventually(
        lambda: wallet_view(stack, account_id), lambda view: view["messaging"] == messaging, within=within
    )


async def ledger(stack: Stack, account_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """Every entry of the messaging wallet's ledger, page after page."""
    path = f"/v1/accounts/{account_id}/wallets/messaging/movements"
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await stack.api.get(path, params=params, headers=stack.admin)
        assert response.status_code == 200, response.text
        page = response.json()
        entries += page["items"]
        cursor = page["next"]
        if cursor is None:
            return entries
