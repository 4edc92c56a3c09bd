"""Reconciliation keeps the SIP registrar's subscriber table in line with billing, as it does the CMMS: a
row lost, changed or left behind the service's back is found and put right (a lost or changed one by the
account's own push, a stray one deleted by the run, within the same deletion ceiling), and the phone
registers again. A real dev server and worker, a CMMS simulator of this module's own, a real Kamailio
and sipp; billing's and the registrar's databases on SQLite and on PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clients.sip_registrar import ha1, ha1b
from contracts.reconciliation import ReconciliationProgress
from core.settings import Settings
from services.reconciliation import start_reconciliation
from tests.support.catalog import order_body, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.simulator import running_simulator
from tests.support.sip import SipStack, requires_sip, running_sip_stack
from workflows.reconciliation import ReconciliationWorkflow

pytestmark = requires_sip

COUNTS = ("missing", "different", "orphaned", "repaired", "failed")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def sip(
    request: pytest.FixtureRequest, dev_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SipStack]:
    """A CMMS of this module's own (another test's records would be orphans here) and a registrar."""
    backend: str = request.param
    state: Path = tmp_path_factory.mktemp(f"sip-reconciliation-{backend}")
    async with (
        running_simulator(state / "cmms") as sim,
        running_sip_stack(backend, dev_server, sim, state) as running,
    ):
        yield running


async def _phone(sip: SipStack) -> dict[str, Any]:
    """An ordered account, completed, that registers: its id, domain and password."""
    stack = sip.stack
    body = order_body(await seed_catalog(stack, custom_fields={"domain": "voice.recon.example"}))
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    device = await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})
    assert device.status_code == 200, device.text
    phone: dict[str, Any] = device.json()
    assert await sip.kamailio.registers(phone["domain"], phone["account_id"], phone["password"])
    return phone


async def _reconcile(sip: SipStack, settings: Settings | None = None) -> tuple[str, ReconciliationProgress]:
    stack = sip.stack
    started = await start_reconciliation(stack.temporal, settings or stack.settings)
    handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, started.workflow_id)
    return started.reconciliation_id, await asyncio.wait_for(handle.result(), 120)


def _counts(result: ReconciliationProgress | dict[str, Any]) -> dict[str, int]:
    shown = result.model_dump() if isinstance(result, ReconciliationProgress) else result
    return {name: shown[name] for name in COUNTS}


def _row(phone: dict[str, Any]) -> dict[str, str]:
    account_id, domain, password = phone["account_id"], phone["domain"], phone["password"]
    return {
        "domain": domain,
        "password": "",
        "ha1": ha1(account_id, domain, password),
        "ha1b": ha1b(account_id, domain, password),
    }


def _rows_of(sip: SipStack, account_id: str) -> Callable[[], Awaitable[list[dict[str, str]]]]:
    return lambda: sip.registrar.subscribers(account_id)


async def _in_line(sip: SipStack) -> None:
    """Before the drift a test makes, a run that finds nothing to do: each test's counts are its own."""
    _, result = await _reconcile(sip)
    assert result.status == "completed" and _counts(result) == dict.fromkeys(COUNTS, 0), result


async def test_a_row_lost_behind_our_back_is_restored_and_the_phone_registers_again(sip: SipStack) -> None:
    phone = await _phone(sip)
    account_id = phone["account_id"]
    await _in_line(sip)
    sip.execute("DELETE FROM subscriber WHERE username = ?", account_id)
    assert not await sip.kamailio.registers(phone["domain"], account_id, phone["password"])

    reconciliation_id, result = await _reconcile(sip)
    # The CMMS still holds the account: it is counted as different, and its own push writes the row.
    assert result.status == "completed" and _counts(result) == {
        "missing": 0,
        "different": 1,
        "orphaned": 0,
        "repaired": 1,
        "failed": 0,
    }
    assert await sip.registrar.subscribers(account_id) == [_row(phone)]
    assert await sip.kamailio.registers(phone["domain"], account_id, phone["password"])
    # Compared as keyed digests: neither the password nor its ha1 is in the run's history.
    history = await sip.stack.temporal.get_workflow_handle(f"reconciliation-{reconciliation_id}").fetch_history()
    for secret in (phone["password"], _row(phone)["ha1"], _row(phone)["ha1b"]):
        assert secret not in history.to_json()


async def test_an_account_lost_from_both_is_missing_and_restored_in_both(sip: SipStack) -> None:
    phone = await _phone(sip)
    account_id = phone["account_id"]
    await _in_line(sip)
    sip.execute("DELETE FROM subscriber WHERE username = ?", account_id)
    await sip.stack.sim.drop(account_id)

    _, result = await _reconcile(sip)
    assert _counts(result) == {"missing": 1, "different": 0, "orphaned": 0, "repaired": 1, "failed": 0}
    assert await sip.registrar.subscribers(account_id) == [_row(phone)]
    assert account_id in {record.account_id for record in await sip.stack.sim.records()}
    assert await sip.kamailio.registers(phone["domain"], account_id, phone["password"])


async def test_an_unavailable_registrar_is_waited_out_and_the_run_then_repairs(sip: SipStack) -> None:
    phone = await _phone(sip)
    account_id = phone["account_id"]
    await _in_line(sip)
    sip.execute("DELETE FROM subscriber WHERE username = ?", account_id)
    stack = sip.stack
    with sip.down():
        started = await start_reconciliation(stack.temporal, stack.settings)
        handle = stack.temporal.get_workflow_handle_for(ReconciliationWorkflow.run, started.workflow_id)

        async def retrying() -> bool:
            """The run's page read tried again (PostgreSQL refuses connections; the CMMS is up), or the
            repair's push failing to write the row (SQLite locked, which its readers are not)."""
            account = (await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)).json()
            if account["provisioning_state"] == "retry":
                return True
            pending = (await handle.describe()).raw_description.pending_activities
            return any(p.activity_type.name == "read_cmms_page" and p.attempt > 1 for p in pending)

        await eventually(retrying, what="the reconciliation waiting for the registrar")
    result = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "completed"
    assert _counts(result) == {"missing": 0, "different": 1, "orphaned": 0, "repaired": 1, "failed": 0}
    assert await sip.registrar.subscribers(account_id) == [_row(phone)]
    assert await sip.kamailio.registers(phone["domain"], account_id, phone["password"])


async def test_a_row_with_a_wrong_digest_or_domain_is_repaired(sip: SipStack) -> None:
    one, two = await _phone(sip), await _phone(sip)
    await _in_line(sip)
    # One row's ha1 changed by hand (its ha1b left alone), the other moved to another domain.
    wrong = ha1(one["account_id"], one["domain"], "not-the-password")
    sip.execute("UPDATE subscriber SET ha1 = ? WHERE username = ?", wrong, one["account_id"])
    sip.execute("UPDATE subscriber SET domain = ? WHERE username = ?", "elsewhere.example", two["account_id"])
    assert not await sip.kamailio.registers(one["domain"], one["account_id"], one["password"])

    _, result = await _reconcile(sip)
    assert _counts(result) == {"missing": 0, "different": 2, "orphaned": 0, "repaired": 2, "failed": 0}
    for phone in (one, two):
        assert await sip.registrar.subscribers(phone["account_id"]) == [_row(phone)]
        assert await sip.kamailio.registers(phone["domain"], phone["account_id"], phone["password"])


async def test_rows_billing_does_not_vouch_for_are_removed(sip: SipStack) -> None:
    blocked, terminated = await _phone(sip), await _phone(sip)
    stack = sip.stack
    for account_id, body in ((blocked["account_id"], {"blocked": True}), (terminated["account_id"], None)):
        if body is None:
            response = await stack.api.delete(f"/v1/accounts/{account_id}", headers=stack.admin)
        else:
            response = await stack.api.patch(f"/v1/accounts/{account_id}", json=body, headers=stack.admin)
        assert response.status_code in (200, 202), response.text
        await eventually(_rows_of(sip, account_id), lambda rows: rows == [], what=f"{account_id}'s row gone")
    await _in_line(sip)
    # Rows written behind billing's back: for the blocked account, for the terminated one, for none at all.
    await sip.registrar.put(blocked["account_id"], blocked["domain"], SecretStr(blocked["password"]))
    await sip.registrar.put(terminated["account_id"], terminated["domain"], SecretStr(terminated["password"]))
    await sip.registrar.put("stray-sip-1", "d.example", SecretStr("Stray-Secret-1"))
    assert await sip.kamailio.registers(blocked["domain"], blocked["account_id"], blocked["password"])

    _, result = await _reconcile(sip)
    # The blocked account's row goes by its own push (different); the others are orphans the run deletes.
    assert _counts(result) == {"missing": 0, "different": 1, "orphaned": 2, "repaired": 3, "failed": 0}
    for account_id in (blocked["account_id"], terminated["account_id"], "stray-sip-1"):
        assert await sip.registrar.subscribers(account_id) == []
    assert not await sip.kamailio.registers(blocked["domain"], blocked["account_id"], blocked["password"])
    assert not await sip.kamailio.registers("d.example", "stray-sip-1", "Stray-Secret-1")


async def test_orphan_rows_past_the_deletion_ceiling_are_held_until_confirmed(sip: SipStack) -> None:
    await _phone(sip)
    await _in_line(sip)
    strays = [f"stray-held-{i:02}" for i in range(4)]
    for username in strays:
        await sip.registrar.put(username, "d.example", SecretStr("Stray-Secret-2"))
    # They count with the CMMS's orphans: one stray record there makes five, past a ceiling of three.
    await sip.stack.sim.put_raw("stray-held-cmms", password="p", profile="Business", domain="d.example")
    # Pages of two: the registrar's rows outnumber a page within one of the CMMS's, whose pages end early.
    settings = sip.stack.settings.with_changes(
        reconcile_max_deletions=3, reconcile_max_deletion_share=0.01, reconcile_page_size=2
    )

    reconciliation_id, result = await _reconcile(sip, settings)
    assert result.status == "held" and _counts(result) == {
        "missing": 0,
        "different": 0,
        "orphaned": 5,
        "repaired": 0,
        "failed": 0,
    }
    for username in strays:
        assert len(await sip.registrar.subscribers(username)) == 1

    stack = sip.stack
    accepted = await stack.api.post(f"/v1/reconciliations/{reconciliation_id}/confirm", headers=stack.admin)
    assert accepted.status_code == 202, accepted.text
    view = await eventually(
        lambda: stack.api.get(f"/v1/reconciliations/{reconciliation_id}", headers=stack.admin),
        lambda view: view.json()["status"] == "completed",
        within=60,
        every=0.2,
        what="the confirmed reconciliation's completion",
    )
    assert _counts(view.json()) == {"missing": 0, "different": 0, "orphaned": 5, "repaired": 5, "failed": 0}
    for username in strays:
        assert await sip.registrar.subscribers(username) == []
    assert "stray-held-cmms" not in {record.account_id for record in await stack.sim.records()}
