"""Every change reaches Temporal through the outbox: committed with the change, delivered after it, by
whichever API process is alive, once, whether Temporal was up, down or hanging when the change came."""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from billing.db import make_engine, make_sessionmaker, snapshot
from billing.models import Account, AccountStatus, OutboxKind, OutboxRecord, utcnow
from contracts.provisioning import account_workflow_id
from contracts.search_attributes import ORDER_ID
from core.temporal import connect
from services.outbox import AWAY, Outbox
from tests.support.catalog import new_id, order_body, seed_catalog
from tests.support.database import fresh_database, sqlite_database
from tests.support.messaging import ordered_account, wait_for_record
from tests.support.net import free_port
from tests.support.orders import finished, store_order, submit
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, Stack, running_stack, serving_api, stack_settings
from tests.support.temporal_server import OwnTemporalServer


@pytest.fixture(scope="module")
async def quick_stack(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    """The whole stack, its relay looking for undelivered records every 0.2 s."""
    settings = stack_settings(dev_server, billing_database, sim, outbox_poll_seconds=0.2)
    async with running_stack(settings, sim) as running:
        yield running


async def test_the_post_answers_and_the_workflow_starts_after(quick_stack: Stack) -> None:
    body = order_body(await seed_catalog(quick_stack))
    accepted = await submit(quick_stack, body)
    assert accepted["status"] == "accepted" and accepted["workflow_id"] == f"order-{body['order_id']}"
    assert (await finished(quick_stack, body["order_id"]))["status"] == "completed"
    # Delivered records are deleted together, at most every half lease: gone within a lease.
    outbox = Outbox(
        quick_stack.sessions,
        quick_stack.temporal,
        quick_stack.settings.outbox,
        quick_stack.settings.temporal.task_queue,
    )
    within = quick_stack.settings.outbox.lease_seconds + 5
    assert (
        await eventually(outbox.pending, lambda left: left == 0, within=within, every=0.2, what="an empty outbox") == 0
    )


async def test_an_order_whose_api_died_before_telling_temporal_is_started_by_the_relay(quick_stack: Stack) -> None:
    order = await store_order(quick_stack, await seed_catalog(quick_stack))  # committed, its record due
    view = await finished(quick_stack, order.order_id)
    assert view["status"] == "completed" and view["provisioning_state"] == "ok"
    description = await quick_stack.temporal.get_workflow_handle(order.workflow_id).describe()
    assert description.typed_search_attributes.get(ORDER_ID) == order.order_id


async def test_an_account_change_whose_api_died_before_telling_temporal_reaches_the_cmms(quick_stack: Stack) -> None:
    account_id = await ordered_account(quick_stack)
    # What a PATCH commits when its process is killed right after: the block and its record, never delivered.
    async with quick_stack.sessions() as session:
        account = await session.get_one(Account, account_id)
        account.status = AccountStatus.blocked
        account.revision += 1
        session.add(account)
        session.add(OutboxRecord(kind=OutboxKind.account, target=account_id, available_at=utcnow()))
        await session.commit()
    record = await wait_for_record(quick_stack.sim, account_id, lambda r: r.blocked)
    assert record.blocked


async def _signals(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for event in history.events if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_api_processes_on_one_database_deliver_each_record_once(
    dev_server: str, sim: SimulatorProcess, backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as database:  # no other relay reads it
        await _two_relays(dev_server, sim, database)


async def _two_relays(dev_server: str, sim: SimulatorProcess, database: str) -> None:
    # A task queue no worker polls: each workflow keeps exactly the signals it was sent.
    settings = stack_settings(dev_server, database, sim, temporal_task_queue=f"idle-{secrets.token_hex(4)}")
    targets = [new_id("acct") for _ in range(40)]
    engines = [make_engine(database) for _ in range(2)]
    client = await connect(settings.temporal)
    relays = [
        Outbox(make_sessionmaker(engine), client, settings.outbox, settings.temporal.task_queue) for engine in engines
    ]
    try:
        async with relays[0].sessions() as session:
            session.add_all(
                OutboxRecord(kind=OutboxKind.account, target=target, available_at=utcnow()) for target in targets
            )
            await session.commit()
        delivered = await asyncio.gather(*(relay.relay_once() for relay in relays), relays[0].relay_once())
        assert sum(delivered) == len(targets)
        assert await relays[1].pending() == 0
        counts = await asyncio.gather(*(_signals(client, account_workflow_id(target)) for target in targets))
        assert counts == [1] * len(targets)
    finally:
        for target in targets:
            await client.get_workflow_handle(account_workflow_id(target)).terminate("test over")
        for engine in engines:
            await engine.dispose()


async def test_the_api_starts_and_takes_changes_while_temporal_is_unreachable(
    sim: SimulatorProcess, tmp_path: Path
) -> None:
    settings = stack_settings(f"127.0.0.1:{free_port()}", sqlite_database(tmp_path), sim)  # nothing listens
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, headers=admin) as api:
        assert (await api.get("/healthz")).status_code == 200
        body = {"customer_class_id": "c", "name": "C", "custom_fields": ["profileName"]}
        assert (await api.post("/v1/customer-classes", json=body)).status_code == 201
        customer = {"customer_id": "k", "name": "K", "customer_class_id": "c"}
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        changed = await api.patch("/v1/customers/k", json={"custom_fields": {"profileName": "Business"}})
        assert changed.status_code == 202, changed.text
        # The rollout has not started (Temporal is away): it reads as running for the new revision.
        progress = await api.get("/v1/customers/k/rollout")
        assert progress.status_code == 200, progress.text
        assert progress.json()["status"] == "running" and progress.json()["revision"] == 2
    engine = make_engine(settings.database.url)
    async with snapshot(make_sessionmaker(engine)) as session:
        records = (await session.exec(select(OutboxRecord))).all()
    await engine.dispose()
    assert [(r.kind, r.target, r.revision) for r in records] == [(OutboxKind.customer, "k", 2)]
    assert records[0].attempts >= 1 and records[0].last_error == AWAY


async def test_changes_made_while_temporal_is_down_all_reach_the_cmms_when_it_returns(
    sim: SimulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.outbox")
    temporal = OwnTemporalServer(tmp_path / "temporal.db")
    await temporal.start()
    try:
        settings = stack_settings(temporal.address, sqlite_database(tmp_path), sim, outbox_poll_seconds=0.2)
        async with running_stack(settings, sim) as stack:
            account_id = await ordered_account(stack, push_events=True)
            body = order_body(await seed_catalog(stack), password="Chosen-by-the-website-42")
            await temporal.stop()

            # Each answered at once, Temporal down: the change is stored, and so is what Temporal must learn.
            assert (await stack.api.post("/v1/orders", json=body, headers=stack.website)).status_code == 202
            patch = {"blocked": True, "password": "Changed-while-down-7"}
            assert (
                await stack.api.patch(f"/v1/accounts/{account_id}", json=patch, headers=stack.admin)
            ).status_code == 202
            wallet = {"service": "messaging", "balance": 5}
            opened = await stack.api.post(f"/v1/accounts/{account_id}/wallets", json=wallet, headers=stack.admin)
            assert opened.status_code == 201, opened.text
            outbox = Outbox(stack.sessions, stack.temporal, settings.outbox, settings.temporal.task_queue)
            assert await outbox.pending() >= 3
            for _ in range(100):  # until a delivery has failed and said so
                if any("Temporal not told yet" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.1)
            logged = "\n".join(r.getMessage() for r in caplog.records)
            assert "Temporal not told yet" in logged
            assert "Chosen-by-the-website-42" not in logged and "Changed-while-down-7" not in logged

            await temporal.start()
            view = await finished(stack, body["order_id"])
            assert view["status"] == "completed" and view["provisioning_state"] == "ok"
            record = await wait_for_record(sim, account_id, lambda r: r.blocked and r.messaging_enabled, within=30)
            assert record.blocked
            for _ in range(100):
                if await outbox.pending() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await outbox.pending() == 0
    finally:
        await temporal.stop()
