"""MvnoOrderWorkflow on Temporal's time-skipping test server, with the real activities, a real
SQLite billing database and the simulator process."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from billing.db import make_engine, make_sessionmaker
from billing.models import Account, Customer, CustomerClass, Order, OrderStatus, Product
from contracts.orders import ORDER_NOT_FOUND, MvnoOrderInput, MvnoOrderResult, order_workflow_id
from core.settings import Settings
from core.temporal import connect
from tests.support.catalog import random_imei
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import running_worker, stack_settings
from tests.support.temporal_server import server_address
from workflows.mvno_order import MvnoOrderWorkflow


@pytest.fixture
async def settings(time_skipping_server: WorkflowEnvironment, sim: SimulatorProcess, tmp_path: Path) -> Settings:
    address = server_address(time_skipping_server)
    return stack_settings(address, sqlite_database(tmp_path), sim)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with running_worker(settings):
        yield await connect(settings.temporal)


async def _order(settings: Settings, *, profile: str | None = None) -> Order:
    """An order as the API stores it, for a customer whose class enables the profile."""
    engine = make_engine(settings.database.url)
    sessions = make_sessionmaker(engine)
    order = Order(
        order_id="o-1",
        customer_id="c-1",
        product_id="p-1",
        account_id="a-1",
        imei=random_imei(),
        fingerprint="f",
        workflow_id=order_workflow_id("o-1"),
    )
    async with sessions() as session:
        session.add(CustomerClass(customer_class_id="k", name="K", custom_fields=["profileName"]))
        await session.flush()
        fields = {"profileName": profile} if profile else {}
        session.add(Customer(customer_id="c-1", name="C", customer_class_id="k", custom_fields=fields))
        session.add(Product(product_id="p-1", name="P"))
        await session.flush()
        session.add(order)
        await session.commit()
    await engine.dispose()
    return order


Row = TypeVar("Row", Order, Account)


async def _row(settings: Settings, model: type[Row], key: str) -> Row | None:
    engine = make_engine(settings.database.url)
    async with make_sessionmaker(engine)() as session:
        row = await session.get(model, key)
    await engine.dispose()
    return row


async def test_the_order_completes_and_the_account_is_active(client: Client, settings: Settings) -> None:
    order = await _order(settings, profile="Business")
    result = await client.execute_workflow(
        MvnoOrderWorkflow.run,
        MvnoOrderInput(order_id=order.order_id),
        id=order.workflow_id,
        task_queue=settings.temporal.task_queue,
    )
    assert result == MvnoOrderResult(order_id="o-1", account_id="a-1", status="completed")
    account = await _row(settings, Account, "a-1")
    assert isinstance(account, Account) and account.status == "active" and account.cmms_version == 1


async def test_a_profile_the_cmms_refuses_fails_the_order_and_rolls_the_account_back(
    client: Client, settings: Settings
) -> None:
    order = await _order(settings, profile="Gold")  # the simulator knows Residential and Business only
    result = await client.execute_workflow(
        MvnoOrderWorkflow.run,
        MvnoOrderInput(order_id=order.order_id),
        id=order.workflow_id,
        task_queue=settings.temporal.task_queue,
    )
    assert result.status == "failed" and result.error is not None and "Gold" in result.error
    stored = await _row(settings, Order, "o-1")
    assert isinstance(stored, Order) and stored.status == OrderStatus.failed and stored.error == result.error
    assert await _row(settings, Account, "a-1") is None


async def test_an_order_that_does_not_exist_fails_loudly(client: Client, settings: Settings) -> None:
    with pytest.raises(WorkflowFailureError) as raised:
        await client.execute_workflow(
            MvnoOrderWorkflow.run,
            MvnoOrderInput(order_id="missing"),
            id="order-missing",
            task_queue=settings.temporal.task_queue,
        )
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ORDER_NOT_FOUND


@pytest.mark.parametrize("taken", ["account id", "IMEI"])
async def test_an_account_id_or_imei_taken_since_acceptance_fails_the_order(
    client: Client, settings: Settings, taken: str
) -> None:
    order = await _order(settings)
    # Another path (a signup, an operator) took the order's account id or IMEI after the API accepted it.
    other = Account(
        account_id="a-1" if taken == "account id" else "a-other",
        customer_id="c-1",
        product_id="p-1",
        imei=random_imei() if taken == "account id" else order.imei,
        sip_password="not-this-orders",
        created_by="signup:s-1",
    )
    engine = make_engine(settings.database.url)
    async with make_sessionmaker(engine)() as session:
        session.add(other)
        await session.commit()
    await engine.dispose()
    result = await client.execute_workflow(
        MvnoOrderWorkflow.run,
        MvnoOrderInput(order_id=order.order_id),
        id=order.workflow_id,
        task_queue=settings.temporal.task_queue,
    )
    expected = "account id a-1 is already in use" if taken == "account id" else f"IMEI {order.imei} already belongs"
    assert result.status == "failed" and result.error is not None and result.error.startswith(expected)
    kept = await _row(settings, Account, other.account_id)
    assert isinstance(kept, Account) and kept.created_by == "signup:s-1"  # the other account is left alone
    stored = await _row(settings, Order, "o-1")
    assert isinstance(stored, Order) and stored.status == OrderStatus.failed
