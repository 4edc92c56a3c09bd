"""Submit an order through the API and wait for its workflow, as the website would."""

import asyncio
from typing import Any

from contracts.orders import MvnoOrderResult
from core.temporal import result_once_started
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
