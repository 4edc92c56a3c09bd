"""A CMMS that will not serve us (a rotated token) is an outage to alert on, never a refusal: the
order waits, in `retry` with the reason, and completes once the worker has the new token."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from billing.db import make_engine, make_sessionmaker
from billing.models import Account, AccountStatus, Order, OrderStatus
from core.temporal import connect
from tests.support.catalog import order_body, seed_catalog
from tests.support.database import sqlite_database
from tests.support.net import free_port
from tests.support.orders import finished, submit
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import Stack, running_stack, running_worker, serving_api, stack_settings


async def test_a_rotated_token_holds_the_order_in_retry_until_the_worker_has_the_new_one(
    dev_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_simulator(tmp_path / "cmms") as sim:
        old_token, new_token = sim.token, "rotated-token-Kx81-secret"
        settings = stack_settings(dev_server, sqlite_database(tmp_path), sim, worker_metrics_port=free_port())
        engine = make_engine(settings.database.url)
        async with serving_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30.0) as api:
            stack = Stack(settings, api, sim, await connect(settings.temporal), make_sessionmaker(engine))
            body = order_body(await seed_catalog(stack))
            order_id = body["order_id"]
            await sim.rotate_token(new_token)  # the CMMS's operators rotate it; the worker still has the old one

            async with running_worker(settings):
                await submit(stack, body)
                view = await _retrying_three_times(stack, order_id, caplog)
                assert view["status"] == "provisioning" and view["provisioning_state"] == "retry"
                assert "401" in view["error"] and "CMMS_TOKEN" in view["error"]
                async with stack.sessions() as session:  # nothing given up, nothing rolled back
                    assert (await session.get_one(Order, order_id)).status == OrderStatus.provisioning
                    account = await session.get_one(Account, view["account_id"])
                    assert account.status == AccountStatus.pending
                metrics = (await api.get(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics")).text

            alerts = [r for r in caplog.records if r.levelno == logging.ERROR and "CMMS refuses" in r.getMessage()]
            assert alerts and all(r.exc_info is None and "\n" not in r.getMessage() for r in alerts)
            assert all(old_token not in r.getMessage() and new_token not in r.getMessage() for r in caplog.records)
            # One line a try: no traceback from the SDK beside it.
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info is not None]
            assert [
                line
                for line in metrics.splitlines()
                if line.startswith("cmms_unavailable") and 'kind="misconfigured"' in line and 'status="401"' in line
            ], metrics

            fixed = settings.with_changes(cmms_token=SecretStr(new_token), worker_metrics_port=0)
            async with running_worker(fixed):
                order = await finished(stack, order_id)
            assert order["status"] == "completed" and order["provisioning_state"] == "ok" and order["error"] is None
            record = await sim.get_record(order["account_id"])
            assert record is not None and record.imei == body["account"]["imei"]
        await engine.dispose()


async def test_an_outage_logs_one_line_per_try_with_the_reason(
    dev_server: str, faulty_sim: SimulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = stack_settings(dev_server, sqlite_database(tmp_path), faulty_sim)
    async with running_stack(settings, faulty_sim) as stack:
        body = order_body(await seed_catalog(stack))
        await faulty_sim.set_faults(outage_seconds=3)
        await submit(stack, body)
        order = await finished(stack, body["order_id"])
        history = await stack.temporal.get_workflow_handle(f"order-{body['order_id']}").fetch_history()
    assert order["status"] == "completed"
    # The last try is the one that succeeded: every one before it failed, and logged one line.
    attempts = max(
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    )
    tries = [r for r in caplog.records if "CMMS unavailable, retrying" in r.getMessage()]
    assert attempts >= 2 and len(tries) == attempts - 1
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in tries)
    assert all("503" in r.getMessage() and "simulated outage" in r.getMessage() for r in tries)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info is not None]


async def _retrying_three_times(stack: Stack, order_id: str, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The order's view once the worker has logged three failed tries at the CMMS."""
    for _ in range(300):
        tries = [r for r in caplog.records if "CMMS refuses" in r.getMessage() and r.name.startswith("temporalio")]
        if len(tries) >= 3:
            response = await stack.api.get(f"/v1/orders/{order_id}", headers=stack.website)
            view: dict[str, Any] = response.json()
            return view
        await asyncio.sleep(0.1)
    pytest.fail("the worker never logged three failed tries at the CMMS")
