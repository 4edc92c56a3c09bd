"""Submit an order through the API and wait for its workflow, as the website would."""

import asyncio
import secrets
from typing import Any

from billing.models import Order, OrderStatus, OutboxKind, OutboxRecord, utcnow
from contracts.orders import MvnoOrderResult, order_workflow_id
from core.gateway import result_once_started
from tests.support.catalog import Catalog, new_id, random_imei
from tests.support.stack import Stack


async def submit(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.api.post("/v1/orders", json=body, headers=stack.website)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def finished(stack: Stack, order_id: str) -> dict[str, Any]:
    """Wait for the order's workflow to end, then answer what the API says of the order."""
    await asyncio.wait_for(result_once_started(stack.temporal, f"order-{order_id}", MvnoOrderResult), 60)
    response = await stack.api.get(f"/v1/orders/{order_id}", headers=stack.website)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def store_order(
    stack: Stack,
    catalog: Catalog,
    *,
    imei: str | None = None,
    status: OrderStatus = OrderStatus.accepted,
    relayed: bool = True,
) -> Order:
    """An order written straight to billing, with no workflow: `accepted` with its outbox record due, as
    the API commits one and dies before telling Temporal (without it, `relayed=False`: an order whose
    workflow has not started yet, until the test starts it), or (`provisioning`, no record) one that stays
    in flight while a test looks."""
    order_id = new_id("ord")
    order = Order(
        order_id=order_id,
        customer_id=catalog.customer_id,
        product_id=catalog.product_id,
        account_id=new_id("acct"),
        imei=imei or random_imei(),
        fingerprint=secrets.token_hex(32),
        status=status,
        workflow_id=order_workflow_id(order_id),
    )
    async with stack.sessions() as session:
        session.add(order)
        if status == OrderStatus.accepted and relayed:
            session.add(OutboxRecord(kind=OutboxKind.order, target=order_id, available_at=utcnow()))
        await session.commit()
    return order
