"""Adopting an existing PortaBilling base: accounts that existed before this service was connected (the
simulator's `"silent": true`, created with no ESPF event) reach the CMMS through a reconciliation
beside PortaBilling, which pages PortaBilling's accounts over its JSON API; a later run finds nothing,
and drift at the CMMS is repaired. Real parts: the PortaBilling simulator and a CMMS simulator of this
module's own (a reconciliation takes every record this PortaBilling lacks for an orphan), the API, the
worker and Temporal, on SQLite and PostgreSQL."""

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError

from contracts.cmms import password_digest
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.portabilling import Beside, new_id, new_imei, running_portabilling_sim
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import running_stack, stack_settings

COUNTS = ("checked", "missing", "different", "orphaned", "repaired", "failed")


@pytest.fixture(scope="module")
async def own_cmms(billing_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    async with running_simulator(tmp_path_factory.mktemp("cmms-adoption")) as running:
        yield running


@pytest.fixture(scope="module")
async def beside(dev_server: str, billing_database: str, own_cmms: SimulatorProcess) -> AsyncIterator[Beside]:
    api_port = free_port()
    async with running_portabilling_sim(
        f"http://127.0.0.1:{api_port}/v1/portabilling/events",
        PORTABILLING_SIM_REPEAT_EVERY="0",
        PORTABILLING_SIM_ID_OFFSET=str(secrets.randbelow(10**6) * 10**6),
    ) as pb_url:
        settings = stack_settings(
            dev_server,
            billing_database,
            own_cmms,
            api_port=api_port,
            billing_source="portabilling",
            portabilling_url=pb_url,
        )
        async with running_stack(settings, own_cmms) as stack, httpx.AsyncClient(base_url=pb_url, timeout=10) as pb:
            yield Beside(stack, pb)


async def reconcile(beside: Beside) -> dict[str, Any]:
    """Start a reconciliation as an operator does, and wait for its report."""
    api, admin = beside.stack.api, beside.stack.admin
    started = await api.post("/v1/reconciliations", headers=admin)
    assert started.status_code == 202, started.text
    url = started.json()["progress_url"]

    async def report() -> dict[str, Any]:
        answer = await api.get(url, headers=admin)
        found: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return found

    done: dict[str, Any] = await eventually(report, lambda r: r.get("status") == "completed", within=120)
    return {name: done[name] for name in COUNTS}


async def test_silent_accounts_are_adopted_by_a_reconciliation(beside: Beside) -> None:
    pb, cmms = beside.pb, beside.stack.sim
    product = await beside.create("products", name="Mobile", messaging_push_events=False)
    customer = await beside.create("customers", name="Before us", custom_fields={"profileName": "Business"})
    # The customer's own event starts a rollout of its (still empty) account list: let it end first,
    # so that only the reconciliation can bring the accounts below to the CMMS.
    rollout = beside.stack.temporal.get_workflow_handle(f"rollout-pb-{customer['i_customer']}")

    async def progress() -> Any:
        try:
            return await rollout.query("progress")
        except RPCError:  # not started yet: the event is on its way
            return None

    await eventually(progress, lambda p: p is not None and p["status"] == "completed", within=60)

    def account(**fields: Any) -> dict[str, Any]:
        return {
            "id": new_id(),
            "i_customer": customer["i_customer"],
            "i_product": product["i_product"],
            "imei": new_imei(),
            "silent": True,
        } | fields

    open_ones = [await beside.create("accounts", **account()) for _ in range(4)]
    inactive = await beside.create("accounts", **account(inactive=True))
    refused = await beside.create("accounts", **account(imei="12345"))  # an IMEI the CMMS cannot take
    closed = await beside.create("accounts", **account())
    assert (await pb.patch(f"/_sim/accounts/{closed['i_account']}", json={"closed": True})).status_code == 200
    everyone = [*open_ones, inactive, refused]
    for created in [*everyone, closed]:
        assert created["events"] == []  # silent: PortaBilling never told the service
        events = await pb.get("/_sim/events", params={"i_account": created["i_account"]})
        assert [e["event_type"] for e in events.json()] in ([], ["Account/Status/Closed", "Subscriber/Deleted"])
    assert await cmms.records() == []

    first = await reconcile(beside)
    assert first == {"checked": 6, "missing": 6, "different": 0, "orphaned": 0, "repaired": 5, "failed": 1}
    held = {r.account_id: r for r in await cmms.records()}
    assert sorted(held) == sorted(a["id"] for a in [*open_ones, inactive])
    for created in open_ones:
        record = held[created["id"]]
        assert (record.imei, record.profile, record.blocked) == (created["imei"], "Business", False)
        assert record.password_digest == password_digest(created["id"], created["service_password"])
    assert held[inactive["id"]].blocked  # not yet active: pushed blocked
    statuses = (await pb.get("/_sim/status", params={"i_account": refused["i_account"]})).json()
    assert statuses[-1]["status"] == "FAILED" and "15 digits" in statuses[-1]["message"]

    # Adopted: the next run finds nothing to do but the account billing cannot give the CMMS.
    assert await reconcile(beside) == {
        "checked": 6,
        "missing": 1,
        "different": 0,
        "orphaned": 0,
        "repaired": 0,
        "failed": 1,
    }

    # Drift at the CMMS (a record changed behind PortaBilling's back) is repaired to PortaBilling's state.
    drifted = open_ones[0]
    record = held[drifted["id"]]
    await cmms.put_raw(
        drifted["id"], password="not-portabillings", imei=record.imei, profile="Residential", domain=record.domain
    )
    repaired = await reconcile(beside)
    assert (repaired["different"], repaired["repaired"]) == (1, 1)
    again = await cmms.get_record(drifted["id"])
    assert again is not None and again.profile == "Business"
    assert again.password_digest == password_digest(drifted["id"], drifted["service_password"])
