"""An order's workflow starts after `POST /v1/orders` has answered; one left unstarted is started later."""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from api.order_starts import start_order_workflow, start_unstarted_orders
from billing.models import Order, OrderStatus, utcnow
from contracts.search_attributes import ORDER_ID
from tests.conftest import sqlite_database
from tests.support.catalog import order_body, seed_catalog
from tests.support.orders import finished, store_order, submit
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_stack, stack_settings
from tests.support.temporal_server import OwnTemporalServer


@pytest.fixture(scope="module")
async def quick_stack(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    """The whole stack, its API looking for unstarted orders every half second."""
    settings = stack_settings(dev_server, billing_database, sim, order_start_retry_seconds=0.5)
    async with running_stack(settings, sim) as running:
        yield running


async def test_the_post_answers_and_the_workflow_starts_after(quick_stack: Stack) -> None:
    body = order_body(await seed_catalog(quick_stack))
    accepted = await submit(quick_stack, body)
    assert accepted["status"] == "accepted" and accepted["workflow_id"] == f"order-{body['order_id']}"
    assert (await finished(quick_stack, body["order_id"]))["status"] == "completed"


async def test_an_order_left_unstarted_is_started_and_completes(quick_stack: Stack) -> None:
    order = await store_order(quick_stack, await seed_catalog(quick_stack))
    view = await finished(quick_stack, order.order_id)  # waits for the workflow the API starts late
    assert view["status"] == "completed" and view["provisioning_state"] == "ok"
    description = await quick_stack.temporal.get_workflow_handle(order.workflow_id).describe()
    assert description.typed_search_attributes.get(ORDER_ID) == order.order_id


async def test_an_accepted_order_whose_workflow_exists_is_left_alone(quick_stack: Stack) -> None:
    order = await store_order(quick_stack, await seed_catalog(quick_stack))
    # Its workflow started, on a task queue no worker polls: the order stays `accepted`, as it would
    # while every worker is down.
    idle = quick_stack.settings.model_copy(update={"temporal_task_queue": f"idle-{secrets.token_hex(4)}"})
    assert await start_order_workflow(quick_stack.temporal, idle, order)
    handle = quick_stack.temporal.get_workflow_handle(order.workflow_id)
    try:
        for _ in range(100):  # until the visibility store lists it
            if [w async for w in quick_stack.temporal.list_workflows(f"OrderId = '{order.order_id}'")]:
                break
            await asyncio.sleep(0.1)
        later = utcnow() + timedelta(seconds=1)
        started = await start_unstarted_orders(quick_stack.temporal, quick_stack.sessions, idle, accepted_before=later)
        assert started == 0
        async with quick_stack.sessions() as session:
            assert (await session.get_one(Order, order.order_id)).status == OrderStatus.accepted
    finally:
        await handle.terminate("test over")


async def test_an_order_that_comes_while_temporal_is_down_starts_when_it_returns(
    sim: SimulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.order_starts")
    temporal = OwnTemporalServer(tmp_path / "temporal.db")
    await temporal.start()
    try:
        # A billing database of its own too: one database, one Temporal, as in any deployment.
        database = sqlite_database(tmp_path)
        settings = stack_settings(temporal.address, database, sim, order_start_retry_seconds=0.5)
        async with running_stack(settings, sim) as stack:
            body = order_body(await seed_catalog(stack), password="Chosen-by-the-website-42")
            await temporal.stop()
            accepted = await submit(stack, body)  # the website is answered: the order is stored
            assert accepted["status"] == "accepted"
            # Down long enough for the start just after the answer to give up: only a later round can start it.
            given_up = f"order {body['order_id']} stored, its workflow not started yet"
            for _ in range(300):
                if any(given_up in record.getMessage() for record in caplog.records):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the start after the answer never gave up")
            assert all("Chosen-by-the-website-42" not in record.getMessage() for record in caplog.records)
            await temporal.start()
            view = await finished(stack, body["order_id"])
            assert view["status"] == "completed" and view["provisioning_state"] == "ok"
    finally:
        await temporal.stop()
