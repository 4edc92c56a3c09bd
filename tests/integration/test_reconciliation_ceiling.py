"""Reconciliation never wipes the CMMS: a run whose orphaned records pass the deletion ceiling, or that
finds billing empty, deletes none of them, ends `held` and says why; an operator's confirmation then
deletes those still orphaned. A real dev server and worker, the CMMS simulator over HTTP (its drift
endpoints), SQLite and PostgreSQL billing."""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, select, update

from billing.db import snapshot, transaction
from billing.models import Account, AccountStatus, ReconciliationOrphan
from contracts.reconciliation import ReconciliationProgress, reconciliation_workflow_id
from contracts.search_attributes import PROVISIONING_STATE
from core.settings import Settings
from services.reconciliation import start_reconciliation
from tests.support.catalog import Catalog, new_id, seed_catalog
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.rollouts import seed_accounts
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import Stack, running_worker
from workflows.reconciliation import ReconciliationWorkflow

COUNTS = ("checked", "missing", "different", "orphaned", "repaired", "failed")


@pytest.fixture(scope="module")
async def sim(billing_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    """A CMMS of this module's own, one per billing database: every record this billing lacks is an orphan."""
    async with running_simulator(tmp_path_factory.mktemp("cmms-ceiling")) as running:
        yield running


@pytest.fixture
async def clean(stack: Stack) -> Catalog:
    """Billing with no live account and an empty CMMS, as each test here starts; a catalog to seed."""
    async with transaction(stack.sessions) as session:
        live = col(Account.status).in_(["pending", "active", "blocked"])
        await session.exec(update(Account).where(live).values(status=AccountStatus.terminated))
    for record in await stack.sim.records():
        await stack.sim.drop(record.account_id)
    return await seed_catalog(stack)


async def strays(stack: Stack, count: int) -> list[str]:
    """`count` CMMS records with no account in billing, written behind billing's back."""
    ids = sorted(new_id("stray") for _ in range(count))
    for account_id in ids:
        await stack.sim.put_raw(account_id, password="p", profile="Business", domain="d.example")
    return ids


async def reconcile(stack: Stack, settings: Settings | None = None) -> tuple[str, ReconciliationProgress]:
    """A reconciliation run to its end (held or completed): its id and result."""
    started = await start_reconciliation(stack.temporal, settings or stack.settings)
    handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, started.workflow_id)
    return started.reconciliation_id, await asyncio.wait_for(handle.result(), 120)


def counts(values: ReconciliationProgress | dict[str, Any]) -> dict[str, int]:
    shown = values.model_dump() if isinstance(values, ReconciliationProgress) else values
    return {name: shown[name] for name in COUNTS}


async def held_view(stack: Stack, reconciliation_id: str) -> dict[str, Any]:
    view = await stack.api.get(f"/v1/reconciliations/{reconciliation_id}", headers=stack.admin)
    assert view.status_code == 200, view.text
    body: dict[str, Any] = view.json()
    assert body["status"] == "held", body
    return body


async def confirm(stack: Stack, reconciliation_id: str) -> httpx.Response:
    return await stack.api.post(f"/v1/reconciliations/{reconciliation_id}/confirm", headers=stack.admin)


async def completed(stack: Stack, reconciliation_id: str) -> dict[str, Any]:
    view = await eventually(
        lambda: stack.api.get(f"/v1/reconciliations/{reconciliation_id}", headers=stack.admin),
        lambda view: view.json()["status"] == "completed",
        within=60,
        every=0.2,
        what="the confirmed reconciliation's completion",
    )
    body: dict[str, Any] = view.json()
    return body


async def cmms_ids(stack: Stack) -> set[str]:
    return {record.account_id for record in await stack.sim.records()}


async def test_billing_emptied_deletes_nothing_and_the_run_says_why(
    stack: Stack, clean: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="temporalio.workflow")
    # A few records only: under the count, so the empty billing alone holds them.
    records = await strays(stack, 4)
    reconciliation_id, result = await reconcile(stack)
    assert result.status == "held" and counts(result) == {
        "checked": 4,
        "missing": 0,
        "different": 0,
        "orphaned": 4,
        "repaired": 0,
        "failed": 0,
    }
    assert await cmms_ids(stack) == set(records)
    view = await held_view(stack, reconciliation_id)
    assert "billing has no accounts" in view["reason"] and view["held_until"]
    # It logs an error naming the run, and shows as held in the Temporal UI.
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"reconciliation {reconciliation_id} held" in line for line in lines), lines
    description = await stack.temporal.get_workflow_handle(reconciliation_workflow_id(reconciliation_id)).describe()
    assert description.typed_search_attributes.get(PROVISIONING_STATE) == "held"


async def test_forty_orphans_beside_three_accounts_are_held_then_deleted_once_confirmed(
    stack: Stack, clean: Catalog
) -> None:
    accounts = await seed_accounts(stack.sessions, clean.customer_id, clean.product_id, 3)  # missing in the CMMS
    orphans = await strays(stack, 40)
    reconciliation_id, result = await reconcile(stack)
    # What was missing is repaired all the same; the orphans are all still there.
    assert result.status == "held"
    assert counts(result) == {"checked": 43, "missing": 3, "different": 0, "orphaned": 40, "repaired": 3, "failed": 0}
    assert await cmms_ids(stack) == set(accounts) | set(orphans)
    view = await held_view(stack, reconciliation_id)
    assert counts(view) == counts(result) and "40 of the CMMS's 40 records" in view["reason"]

    accepted = await confirm(stack, reconciliation_id)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["workflow_id"] == reconciliation_workflow_id(reconciliation_id)
    done = await completed(stack, reconciliation_id)
    assert counts(done) == {"checked": 43, "missing": 3, "different": 0, "orphaned": 40, "repaired": 43, "failed": 0}
    assert await cmms_ids(stack) == set(accounts)
    async with snapshot(stack.sessions) as session:  # the kept orphans are forgotten
        kept = await session.exec(select(ReconciliationOrphan.account_id))
        assert list(kept) == []

    # Confirmed once: again → 409, and an unknown run → 404.
    again = await confirm(stack, reconciliation_id)
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
    unknown = await confirm(stack, "20200101T000000Z-000000")
    assert unknown.status_code == 404


async def test_an_orphan_that_became_an_account_before_the_confirmation_keeps_its_record(
    stack: Stack, clean: Catalog
) -> None:
    await seed_accounts(stack.sessions, clean.customer_id, clean.product_id, 3)
    orphans = await strays(stack, 30)
    reconciliation_id, result = await reconcile(stack)
    assert result.status == "held" and result.orphaned == 30
    # Between the hold and the confirmation, billing gets an account under one orphan's id (an import).
    arrived = orphans[7]
    async with transaction(stack.sessions) as session:
        session.add(
            Account(
                account_id=arrived,
                customer_id=clean.customer_id,
                product_id=clean.product_id,
                sip_password="pw",
                status=AccountStatus.active,
                created_by="test",
            )
        )
    assert (await confirm(stack, reconciliation_id)).status_code == 202
    done = await completed(stack, reconciliation_id)
    assert done["repaired"] == 3 + 29 and done["failed"] == 0
    assert await stack.sim.get_record(arrived) is not None
    assert (await cmms_ids(stack)) & set(orphans) == {arrived}


async def test_a_handful_of_orphans_is_deleted_at_once(stack: Stack, clean: Catalog) -> None:
    await seed_accounts(stack.sessions, clean.customer_id, clean.product_id, 3)
    orphans = await strays(stack, 5)  # most of the records, but no more than the count
    reconciliation_id, result = await reconcile(stack)
    assert result.status == "completed" and result.reason is None
    assert counts(result) == {"checked": 8, "missing": 3, "different": 0, "orphaned": 5, "repaired": 8, "failed": 0}
    assert not (await cmms_ids(stack)) & set(orphans)
    # A completed run: nothing to confirm.
    refused = await confirm(stack, reconciliation_id)
    assert refused.status_code == 409 and "not held" in refused.json()["detail"]


async def test_orphans_over_the_count_but_within_the_share_are_deleted_at_once(stack: Stack, clean: Catalog) -> None:
    # Deletions are held only when they pass both: 5 orphans pass a count of 3, not half of 13 records.
    settings = stack.settings.with_changes(reconcile_max_deletions=3, reconcile_max_deletion_share=0.5)
    await seed_accounts(stack.sessions, clean.customer_id, clean.product_id, 8)
    _, pushed = await reconcile(stack, settings)  # their records reach the CMMS
    assert pushed.status == "completed" and pushed.repaired == 8
    orphans = await strays(stack, 5)
    _, result = await reconcile(stack, settings)
    assert result.status == "completed" and result.orphaned == 5 and result.repaired == 5
    assert not (await cmms_ids(stack)) & set(orphans)
    # One more orphan than half the records: held.
    more = await strays(stack, 9)
    _, held = await reconcile(stack, settings)
    assert held.status == "held" and held.orphaned == 9 and held.cmms_records == 17
    assert (await cmms_ids(stack)) & set(more) == set(more)


async def test_a_later_held_run_takes_the_place_of_an_earlier_one(stack: Stack, clean: Catalog) -> None:
    orphans = await strays(stack, 3)
    first, _ = await reconcile(stack)
    second, _ = await reconcile(stack)
    refused = await confirm(stack, first)
    assert refused.status_code == 409 and "confirm the latest held run" in refused.json()["detail"]
    assert await cmms_ids(stack) == set(orphans)
    assert (await confirm(stack, second)).status_code == 202
    await completed(stack, second)
    assert await cmms_ids(stack) == set()


async def test_a_held_run_is_counted_on_the_workers_metrics_for_the_alert(stack: Stack, clean: Catalog) -> None:
    # A worker of its own (task queue, metrics port), as `python worker.py` runs it.
    settings = stack.settings.with_changes(
        temporal_task_queue=f"ceiling-{secrets.token_hex(4)}", worker_metrics_port=free_port()
    )
    await strays(stack, 2)
    async with running_worker(settings):
        _, result = await reconcile(stack, settings)
        assert result.status == "held"
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics")).text
    # The name the alert's expression uses (docs/alerts.md).
    lines = metrics.splitlines()
    held = [line for line in lines if line.startswith("reconciliation_runs{") and 'status="held"' in line]
    assert held and float(held[0].rsplit(" ", 1)[1]) == 1, metrics
