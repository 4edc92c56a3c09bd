"""Reconciliation end to end: drift written straight into the simulator (its control API) is found
and repaired by the real workflow, on a real dev server, on SQLite and PostgreSQL billing."""

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select, update
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.exceptions import ActivityError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from billing.db import make_engine, make_sessionmaker, snapshot, transaction
from billing.models import Account, AccountStatus, Customer, CustomerClass, Product, utcnow
from billing.provisioning import desired_state
from clients.cmms import CmmsClient
from contracts.cmms import CMMS_PAGE_MAX, password_digest
from contracts.reconciliation import (
    SCHEDULE_ID,
    PageInput,
    ReconciliationInput,
    ReconciliationProgress,
    RepairInput,
    reconciliation_workflow_id,
)
from contracts.search_attributes import DRIFT_FOUND, PROVISIONING_STATE, REPAIRS_FAILED
from core.settings import Settings
from core.temporal import connect
from services.reconciliation import ensure_reconciliation_schedule, new_reconciliation_id, start_reconciliation
from tests.support.catalog import Catalog, new_id, order_body, random_imei, seed_catalog
from tests.support.database import migrate, postgres_database
from tests.support.history import all_histories_text
from tests.support.messaging import open_wallet, ordered_account, wait_for_record
from tests.support.net import free_port
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.rollouts import seed_accounts
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import Stack, running_worker
from worker import reconciliation_activities, serve
from workflows.reconciliation import ReconciliationWorkflow

COUNTS = ("checked", "missing", "different", "orphaned", "repaired", "failed")


@pytest.fixture(scope="module")
async def sim(billing_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    """A CMMS of this module's own, one per billing database: a reconciliation takes every record that
    this billing has no live account for as an orphan, so it must not see other modules' records."""
    async with running_simulator(tmp_path_factory.mktemp("cmms-recon")) as running:
        yield running


async def reconcile(stack: Stack) -> tuple[str, ReconciliationProgress]:
    """Run a reconciliation to its end; its workflow id and result."""
    workflow_id = (await start_reconciliation(stack.temporal, stack.settings)).workflow_id
    handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, workflow_id)
    return workflow_id, await asyncio.wait_for(handle.result(), 120)


def counts(progress: ReconciliationProgress | dict[str, Any]) -> dict[str, int]:
    values = progress.model_dump() if isinstance(progress, ReconciliationProgress) else progress
    return {name: values[name] for name in COUNTS}


def found(checked: int, **drift: int) -> dict[str, int]:
    """The counts of a run that checked `checked` and found (and repaired) `drift`."""
    kinds = {"missing": 0, "different": 0, "orphaned": 0} | drift
    return {"checked": checked, **kinds, "repaired": sum(kinds.values()), "failed": 0}


async def live_count(stack: Stack) -> int:
    async with snapshot(stack.sessions) as session:
        live = await session.exec(select(Account.account_id).where(col(Account.status).in_(["active", "blocked"])))
        return len(list(live))


async def assert_cmms_holds_billing(stack: Stack) -> None:
    """Every live account's record is what billing says (its password as the device receives it), and
    no record is left without a live or pending account."""
    records = {r.account_id: r for r in await stack.sim.records()}
    async with snapshot(stack.sessions) as session:
        for account in await session.exec(select(Account)):
            if account.status == AccountStatus.pending:
                records.pop(account.account_id, None)
            if account.status not in (AccountStatus.active, AccountStatus.blocked):
                continue
            wanted = (await desired_state(session, account, stack.settings.provisioning, now=utcnow())).record
            held = records.pop(account.account_id)
            shown = (held.imei, held.profile, held.domain, held.blocked)
            assert shown == (wanted.imei, wanted.profile, wanted.domain, wanted.blocked), account.account_id
            assert wanted.messaging_enabled in (None, held.messaging_enabled), account.account_id
            secret = wanted.password.get_secret_value()
            assert held.password_digest == password_digest(account.account_id, secret), account.account_id
            if not held.blocked:  # and the phone receives it
                device = await stack.sim.http.post("/device/v1/provision", json={"imei": held.imei})
                assert device.json()["password"] == secret, account.account_id
    assert records == {}, f"records with no account: {sorted(records)}"


async def ordered(stack: Stack, catalog: Catalog, count: int) -> list[str]:
    """`count` accounts ordered through the API, provisioned by their workflows."""
    bodies = [order_body(catalog) for _ in range(count)]
    for body in bodies:
        await submit(stack, body)
    orders = [await finished(stack, body["order_id"]) for body in bodies]
    assert {order["status"] for order in orders} == {"completed"}
    return [order["account_id"] for order in orders]


async def changed(stack: Stack, account_id: str, **fields: Any) -> None:
    """The account's record with `fields` changed, behind billing's back (the version stays)."""
    record = await stack.sim.get_record(account_id)
    assert record is not None
    current = record.model_dump(include={"imei", "profile", "domain", "messaging_enabled", "blocked"})
    async with snapshot(stack.sessions) as session:  # the record's password is billing's, until changed
        password = (await session.get_one(Account, account_id)).sip_password
    await stack.sim.put_raw(account_id, **current | {"password": password} | fields)


async def test_drift_is_found_repaired_and_gone_on_the_next_run(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="temporalio.workflow")
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Business", "domain": "acme.example"})
    accounts = await ordered(stack, catalog, 5)
    blocked = await stack.api.patch(f"/v1/accounts/{accounts[4]}", json={"blocked": True}, headers=stack.admin)
    assert blocked.status_code == 202
    await wait_for_record(stack.sim, accounts[4], lambda r: r.blocked)
    messaging = await ordered_account(stack, push_events=True)
    await open_wallet(stack, messaging, 5)
    await wait_for_record(stack.sim, messaging, lambda r: r.messaging_enabled)
    _, clean = await reconcile(stack)
    live = await live_count(stack)
    assert counts(clean) == found(live) and clean.status == "completed"

    # Drift, as CMMS-side mistakes (and a billing account never pushed) would leave it:
    await stack.sim.drop(accounts[0])  # missing
    (never_pushed,) = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1)  # missing
    await changed(stack, accounts[1], password="not-what-billing-says")  # different: the password
    await changed(stack, accounts[2], profile="Residential")  # different: the profile
    await changed(stack, accounts[3], imei=random_imei(), domain="other.example")  # different: IMEI, domain
    await changed(stack, accounts[4], blocked=False)  # different: unblocked
    await changed(stack, messaging, messaging_enabled=False)  # different: the messaging state
    stray = new_id("stray")
    await stack.sim.put_raw(stray, password="p", profile="Business", domain="acme.example")  # orphaned
    (terminated,) = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.terminated
    )
    await stack.sim.put_raw(terminated, password="p", profile="Business", domain="acme.example")  # orphaned
    # Accounts whose orders are still provisioning are their orders' business: neither missing nor orphaned.
    pending = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 2, status=AccountStatus.pending
    )
    await stack.sim.put_raw(pending[0], password="p", profile="Business", domain="acme.example")

    workflow_id, repaired = await reconcile(stack)
    assert counts(repaired) == found(live + 1 + 2, missing=2, different=5, orphaned=2)
    await assert_cmms_holds_billing(stack)
    assert await stack.sim.get_record(stray) is None and await stack.sim.get_record(terminated) is None
    assert await stack.sim.get_record(pending[0]) is not None

    # What it found is on the run: search attributes, and one log line with the counts.
    description = await stack.temporal.get_workflow_handle(workflow_id).describe()
    attributes = description.typed_search_attributes
    assert attributes.get(DRIFT_FOUND) == 9 and attributes.get(REPAIRS_FAILED) == 0
    assert attributes.get(PROVISIONING_STATE) == "completed"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconciliation completed")]
    assert any(f"checked={live + 3} missing=2 different=5 orphaned=2 repaired=9 failed=0" in line for line in lines), (
        lines
    )

    # Its history holds ids, counts and keyed digests: no password, nor the CMMS's own digest of one.
    history = ""
    for _ in range(50):  # the visibility store lists a run a moment after it closed
        if history := await all_histories_text(stack.temporal, f'WorkflowId = "{workflow_id}"'):
            break
        await asyncio.sleep(0.1)
    assert accounts[1] in history and "different" in history
    for secret in ("not-what-billing-says", f"pw-{never_pushed}", "sha256:"):
        assert secret not in history

    _, again = await reconcile(stack)
    assert counts(again) == found(live + 1)


async def test_a_repair_the_cmms_refuses_is_counted_failed(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    (account_id,) = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1)
    async with transaction(stack.sessions) as session:  # a profile the CMMS does not know, behind the API's check
        values = {"custom_fields": {"profileName": "Gold"}}
        await session.exec(update(Customer).where(col(Customer.customer_id) == catalog.customer_id).values(values))
    live = await live_count(stack)
    workflow_id, result = await reconcile(stack)
    assert counts(result) == {"checked": live, "missing": 1, "different": 0, "orphaned": 0, "repaired": 0, "failed": 1}
    attributes = (await stack.temporal.get_workflow_handle(workflow_id).describe()).typed_search_attributes
    assert attributes.get(DRIFT_FOUND) == 1 and attributes.get(REPAIRS_FAILED) == 1
    async with snapshot(stack.sessions) as session:
        account = await session.get_one(Account, account_id)
        assert account.provisioning_state == "failed" and "Gold" in (account.last_error or "")
    async with transaction(stack.sessions) as session:  # leave the module converged
        await session.exec(
            update(Account).where(col(Account.account_id) == account_id).values(status=AccountStatus.terminated)
        )


async def test_a_reconciliation_through_the_api(stack: Stack) -> None:
    (account_id,) = await ordered(stack, await seed_catalog(stack), 1)
    await stack.sim.drop(account_id)
    live = await live_count(stack)
    await stack.sim.set_faults(latency_ms=1500)  # long enough to see it running
    try:
        started = await stack.api.post("/v1/reconciliations", headers=stack.admin)
        assert started.status_code == 202, started.text
        reconciliation_id = started.json()["reconciliation_id"]
        assert started.json()["workflow_id"] == f"reconciliation-{reconciliation_id}"
        running = await stack.api.get(f"/v1/reconciliations/{reconciliation_id}", headers=stack.admin)
        assert running.status_code == 200 and running.json()["status"] == "running"
        assert set(COUNTS) <= set(running.json())
    finally:
        await stack.sim.clear_faults()
    view = await eventually(
        lambda: stack.api.get(f"/v1/reconciliations/{reconciliation_id}", headers=stack.admin),
        lambda view: view.json()["status"] == "completed",
        within=60,
        every=0.2,
        what="the reconciliation's completion",
    )
    assert counts(view.json()) == found(live, missing=1)
    assert await stack.sim.get_record(account_id) is not None


async def test_a_long_reconciliation_continues_as_new_and_keeps_its_counts(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 25)  # missing
    for _ in range(55):  # orphaned: deleting them, a page at a time, takes more batches than a run too
        await stack.sim.put_raw(new_id("stray"), password="p", profile="Business", domain="d.example")
    live = await live_count(stack)
    # One record a page: more batches than one run takes (BATCHES_PER_RUN); a ceiling above the orphans.
    settings = stack.settings.with_changes(reconcile_page_size=1, reconcile_max_deletions=100)
    workflow_id = (await start_reconciliation(stack.temporal, settings)).workflow_id
    handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, workflow_id)
    first_run = (await handle.describe()).run_id
    result = await asyncio.wait_for(handle.result(), 120)
    assert counts(result) == found(live + 55, missing=25, orphaned=55)
    assert (await handle.describe()).run_id != first_run  # it continued as new, counts and all
    await assert_cmms_holds_billing(stack)


async def test_repairs_keep_to_the_cmms_rate_limit(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 10)  # missing
    for _ in range(15):  # orphaned
        await stack.sim.put_raw(new_id("stray"), password="p", profile="Business", domain="d.example")
    live = await live_count(stack)
    # Workers of their own, held to 4 CMMS calls a second, as the settings would hold them in production.
    settings = stack.settings.with_changes(
        temporal_task_queue=f"recon-{secrets.token_hex(4)}", cmms_rate_limit_per_second=4.0
    )
    async with running_worker(settings):
        await stack.sim.reset_stats()
        started = time.monotonic()
        workflow_id = (await start_reconciliation(stack.temporal, settings)).workflow_id
        handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, workflow_id)
        result = await asyncio.wait_for(handle.result(), 120)
        took = time.monotonic() - started
    assert counts(result) == found(live + 15, missing=10, orphaned=15)
    stats = await stack.sim.stats()
    # 25 repairs and a page read: at 4 a second, never more in any one second.
    assert stats["provisioning_calls"] >= 26 and stats["max_per_second"] <= 4, stats
    assert took >= (stats["provisioning_calls"] - 4) / 4


async def test_a_run_the_cmms_refuses_its_records_to_fails_and_says_so(stack: Stack) -> None:
    # More records a page than the CMMS serves: its refusal (422) is for good, not an outage to wait out.
    workflow_id = reconciliation_workflow_id(new_reconciliation_id())
    handle = await stack.temporal.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(page_size=CMMS_PAGE_MAX + 1),
        id=workflow_id,
        task_queue=stack.settings.temporal.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 60)
    activity_failure = failure.value.cause
    assert isinstance(activity_failure, ActivityError) and "limit" in str(activity_failure.cause)
    view = await stack.api.get(
        f"/v1/reconciliations/{workflow_id.removeprefix('reconciliation-')}", headers=stack.admin
    )
    assert view.status_code == 200 and view.json()["status"] == "failed"


async def test_the_reconciliation_api_refuses_bad_calls(stack: Stack) -> None:
    unknown = await stack.api.get("/v1/reconciliations/20200101T000000Z-000000", headers=stack.admin)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    assert (await stack.api.get("/v1/reconciliations/-bad", headers=stack.admin)).status_code == 422
    for call in (stack.api.post("/v1/reconciliations"), stack.api.get("/v1/reconciliations/x")):
        assert (await call).status_code == 401
    for call in (
        stack.api.post("/v1/reconciliations", headers=stack.website),
        stack.api.get("/v1/reconciliations/x", headers=stack.cmms),
    ):
        assert (await call).status_code == 403


async def test_an_orphan_whose_account_appeared_meanwhile_is_left_alone(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    # Both records had no account when the CMMS page was read; one account has come since (an order).
    (arrived,) = await seed_accounts(
        stack.sessions, catalog.customer_id, catalog.product_id, 1, status=AccountStatus.pending
    )
    stray = new_id("stray")
    for account_id in (arrived, stray):
        await stack.sim.put_raw(account_id, password="p", profile="Business", domain="d.example")
    async with stack.sim.client() as cmms:
        activities = reconciliation_activities(stack.temporal, stack.sessions, cmms, stack.settings)
        result = await ActivityEnvironment().run(activities.remove_orphans, RepairInput(account_ids=[arrived, stray]))
    assert (result.removed, result.not_orphaned, result.failed) == (1, 1, 0)
    assert await stack.sim.get_record(arrived) is not None and await stack.sim.get_record(stray) is None
    async with transaction(stack.sessions) as session:  # leave the module converged
        await session.exec(
            update(Account).where(col(Account.account_id) == arrived).values(status=AccountStatus.terminated)
        )
    await stack.sim.drop(arrived)


async def test_billing_pages_in_the_cmms_byte_order_whatever_the_database_collation(dev_server: str) -> None:
    ids = ["case-B", "case-a", "case-b", "case_a"]  # byte order, as the CMMS (SQLite) lists them
    with postgres_database(icu_locale="en-US") as url:
        migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        async with transaction(sessions) as session:
            session.add(CustomerClass(customer_class_id="cc", name="cc"))
            await session.flush()
            session.add(Customer(customer_id="c", name="c", customer_class_id="cc"))
            session.add(Product(product_id="p", name="p"))
            await session.flush()  # the accounts refer to them
            for account_id in ids:
                session.add(
                    Account(
                        account_id=account_id,
                        customer_id="c",
                        product_id="p",
                        sip_password=f"pw-{account_id}",
                        status=AccountStatus.active,
                        created_by="test",
                    )
                )
        async with snapshot(sessions) as session:  # the database's own order is another
            assert list(await session.exec(select(Account.account_id).order_by(Account.account_id))) != ids
        settings = Settings(_env_file=None, temporal_address=dev_server)
        async with CmmsClient("http://127.0.0.1:9", "unused") as cmms:
            activities = reconciliation_activities(await connect(settings.temporal), sessions, cmms, settings)
            paged: list[str] = []
            after = None
            while True:
                page = await activities.read_billing_page(PageInput(after=after, limit=3))
                paged += [entry.account_id for entry in page.entries]
                if (after := page.next_after) is None:
                    break
        await engine.dispose()
    assert paged == ids


async def test_the_worker_keeps_the_schedule_and_its_runs_are_counted_in_metrics(stack: Stack) -> None:
    # A worker of its own (task queue, metrics port), as `python worker.py` runs it.
    settings = stack.settings.with_changes(
        temporal_task_queue=f"recon-{secrets.token_hex(4)}",
        reconcile_every=timedelta(minutes=30),
        worker_metrics_port=free_port(),
    )
    schedule = stack.temporal.get_schedule_handle(SCHEDULE_ID)
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(settings, stop))
    try:
        description = None
        for _ in range(100):
            try:
                description = await schedule.describe()
                break
            except RPCError as err:
                assert err.status == RPCStatusCode.NOT_FOUND
                await asyncio.sleep(0.1)
        assert description is not None, "no schedule after the worker started"
        assert [i.every for i in description.schedule.spec.intervals] == [timedelta(minutes=30)]
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "ReconciliationWorkflow" and action.task_queue == settings.temporal.task_queue

        # A scheduled run, now: it reconciles like any other, and the worker's metrics count it.
        await stack.sim.put_raw(new_id("stray"), password="p", profile="Business", domain="d.example")
        live = await live_count(stack)
        await schedule.trigger()
        run = None
        for _ in range(100):
            recent = (await schedule.describe()).info.recent_actions
            if recent:
                run = recent[-1].action
                break
            await asyncio.sleep(0.1)
        assert isinstance(run, ScheduleActionExecutionStartWorkflow)
        assert run.workflow_id.startswith("reconciliation-scheduled-")
        handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, run.workflow_id)
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.status == "completed" and counts(result) == found(live + 1, orphaned=1)
        view = await stack.api.get(
            f"/v1/reconciliations/{run.workflow_id.removeprefix('reconciliation-')}", headers=stack.admin
        )
        assert counts(view.json()) == counts(result)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics")).text
        checked = [line for line in metrics.splitlines() if "reconciliation_accounts" in line and "checked" in line]
        assert checked and float(checked[0].rsplit(" ", 1)[1]) == result.checked, metrics
    finally:
        stop.set()
        await worker

    # Started again with other settings, the worker updates it (an operator's pause stays);
    # with RECONCILE_EVERY off, removes it.
    await schedule.pause(note="maintenance")
    await ensure_reconciliation_schedule(stack.temporal, settings.with_changes(reconcile_every=timedelta(hours=2)))
    updated = await schedule.describe()
    assert [i.every for i in updated.schedule.spec.intervals] == [timedelta(hours=2)]
    assert updated.schedule.state.paused
    await ensure_reconciliation_schedule(stack.temporal, settings.with_changes(reconcile_every=None))
    with pytest.raises(RPCError) as gone:
        await schedule.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    await ensure_reconciliation_schedule(stack.temporal, settings.with_changes(reconcile_every=None))
