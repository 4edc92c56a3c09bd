"""A customer's rollout on real parts under trouble: a worker restart mid-way, a CMMS outage, a newer
change racing it, a profile only the CMMS can refuse; and its history kept small by continue-as-new."""

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from billing.db import make_engine, make_sessionmaker
from billing.models import Account
from contracts.cmms import CmmsRecord
from contracts.rollouts import rollout_workflow_id
from core.temporal import connect
from tests.support.catalog import Catalog, seed_catalog
from tests.support.rollouts import patch_customer, rollout, rollout_when, seed_accounts
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_worker, serving_api, stack_settings

# Slow enough to stop a rollout half-way, small pages so that it continues-as-new (20 pages a run).
RATE_LIMIT = 20.0
PAGE_SIZE = 3


@pytest.fixture(scope="module")
async def rig(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    settings = stack_settings(
        dev_server,
        billing_database,
        sim,
        cmms_rate_limit_per_second=RATE_LIMIT,
        rollout_page_size=PAGE_SIZE,
        rollout_window=10,
        cmms_profiles="",  # not known up front: the CMMS is the judge of a profile
    )
    engine = make_engine(settings.database.url)
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30.0) as api:
        temporal: Client = await connect(settings.temporal)
        yield Stack(settings, api, sim, temporal, make_sessionmaker(engine))
    await engine.dispose()


async def _customer_with_accounts(stack: Stack, count: int) -> tuple[Catalog, list[str]]:
    catalog = await seed_catalog(stack, custom_fields={"profileName": "Residential"})
    return catalog, await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, count)


async def _records(sim: SimulatorProcess, account_ids: list[str]) -> list[CmmsRecord]:
    wanted = set(account_ids)
    return [r for r in await sim.records() if r.account_id in wanted]


async def test_a_rollout_survives_a_worker_restart_and_continues_as_new(rig: Stack) -> None:
    catalog, accounts = await _customer_with_accounts(rig, 63)  # 21 pages: more than one run
    async with running_worker(rig.settings):
        await patch_customer(rig.api, catalog.customer_id, {"profileName": "Business"})
        interrupted = await rollout_when(rig.api, catalog.customer_id, done=PAGE_SIZE)
    assert interrupted["status"] == "running" and interrupted["done"] < len(accounts)

    async with running_worker(rig.settings):
        progress = await rollout_when(rig.api, catalog.customer_id)
    assert progress == progress | {"total": 63, "done": 63, "failed": 0, "status": "completed"}
    records = await _records(rig.sim, accounts)
    assert len(records) == 63 and {r.profile for r in records} == {"Business"}

    handle = rig.temporal.get_workflow_handle(rollout_workflow_id(catalog.customer_id))
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id  # the run that finished is not the first
    assert len(history.events) < 1_000


async def test_a_rollout_waits_out_a_cmms_outage(rig: Stack, faulty_sim: SimulatorProcess) -> None:
    catalog, accounts = await _customer_with_accounts(rig, 20)
    async with running_worker(rig.settings):
        await faulty_sim.set_faults(outage_seconds=3)
        await patch_customer(rig.api, catalog.customer_id, {"profileName": "Business", "domain": "outage.example"})
        progress = await rollout_when(rig.api, catalog.customer_id)
    assert progress == progress | {"total": 20, "done": 20, "failed": 0}
    records = await _records(rig.sim, accounts)
    assert len(records) == 20 and {(r.profile, r.domain) for r in records} == {("Business", "outage.example")}


async def test_a_newer_change_during_a_rollout_wins(rig: Stack) -> None:
    catalog, accounts = await _customer_with_accounts(rig, 45)
    async with running_worker(rig.settings):
        await patch_customer(rig.api, catalog.customer_id, {"profileName": "Business"})
        await rollout_when(rig.api, catalog.customer_id, done=PAGE_SIZE)
        newer = await patch_customer(
            rig.api, catalog.customer_id, {"profileName": "Residential", "domain": "new.example"}
        )
        progress = await rollout_when(rig.api, catalog.customer_id, revision=newer["revision"])
    assert progress["revision"] == newer["revision"] == 3 and progress["restarts"] >= 1
    assert progress == progress | {"total": 45, "done": 45, "failed": 0, "status": "completed"}
    records = await _records(rig.sim, accounts)
    assert len(records) == 45 and {(r.profile, r.domain) for r in records} == {("Residential", "new.example")}


async def test_a_profile_the_cmms_does_not_know_fails_with_its_reason(rig: Stack) -> None:
    catalog, accounts = await _customer_with_accounts(rig, 4)
    async with running_worker(rig.settings):
        accepted = await rig.api.patch(
            f"/v1/customers/{catalog.customer_id}", json={"custom_fields": {"profileName": "Gold"}}, headers=rig.admin
        )
        assert accepted.status_code == 202  # nothing lists the CMMS's profiles here: it decides
        progress = await rollout_when(rig.api, catalog.customer_id)
        assert progress == progress | {"total": 4, "done": 0, "failed": 4, "status": "completed"}
        async with rig.sessions() as session:
            account = await session.get_one(Account, accounts[0])
        assert account.provisioning_state == "failed" and "unknown profile 'Gold'" in (account.last_error or "")
        view = (await rig.api.get(f"/v1/accounts/{accounts[0]}", headers=rig.admin)).json()
        assert "unknown profile" in view["last_error"]
        assert (await rollout(rig.api, catalog.customer_id))["failed"] == 4
