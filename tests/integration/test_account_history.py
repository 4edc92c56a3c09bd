"""`GET /v1/accounts/{id}/history`: an account's orders, signups, edits, workflows and pushes to the CMMS
with their outcomes, attempts and times, in one answer; a push waiting out a CMMS outage shows its tries
and the reason; billing's part is answered while Temporal is unreachable."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from billing.db import transaction
from billing.models import Account, AccountStatus, PushStatus, Signup, utcnow
from contracts.signups import SignupState
from core.gateway import sync_account
from tests.support.catalog import new_id, order_body, seed_catalog
from tests.support.net import free_port
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.signups import random_mobile
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, serving_api

Check = Callable[[dict[str, Any]], bool]


async def _history_when(stack: Stack, account_id: str, ready: Check, within: float = 30) -> dict[str, Any]:
    """The account's history once `ready` holds of it (Temporal's visibility follows within moments)."""

    async def history() -> dict[str, Any]:
        response = await stack.api.get(f"/v1/accounts/{account_id}/history", headers=stack.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return await eventually(history, ready, within=within, every=0.2, what="the account's history")


async def _ordered_account(stack: Stack) -> tuple[str, str]:
    catalog = await seed_catalog(stack)
    body = order_body(catalog)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    return order["account_id"], body["order_id"]


def _types(history: dict[str, Any]) -> set[str]:
    return {run["workflow_type"] for run in history["workflows"]}


async def test_an_accounts_order_edits_and_pushes_in_one_answer(stack: Stack) -> None:
    account_id, order_id = await _ordered_account(stack)
    secret = "History-Secret-42"
    changed = await stack.api.patch(f"/v1/accounts/{account_id}", json={"password": secret}, headers=stack.admin)
    assert changed.status_code == 202
    await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)

    def settled(h: dict[str, Any]) -> bool:
        # The PATCH's own signal may come after the sync above and push once more (in the same run, or a
        # run of its own once the first ended idle): wait for every run of the account's workflow to end.
        own = [r for r in h["workflows"] if r["workflow_id"] == f"account-{account_id}"]
        pushed = {"MvnoOrderWorkflow", "AccountWorkflow"} <= _types(h) and len(h["pushes"]) >= 2
        return pushed and bool(own) and all(r["status"] == "completed" for r in own)

    history = await _history_when(stack, account_id, settled)
    assert history["account"]["account_id"] == account_id and history["temporal"] == "ok"
    assert [o["order_id"] for o in history["orders"]] == [order_id]
    assert history["orders"][0]["status"] == "completed"
    assert [c["changes"] for c in history["changes"]] == [{"password": "(changed)"}]
    order_run = next(r for r in history["workflows"] if r["workflow_id"] == f"order-{order_id}")
    assert order_run["status"] == "completed" and order_run["provisioning_state"] == "completed"
    own = [r for r in history["workflows"] if r["workflow_id"] == f"account-{account_id}"]
    # In sync with nothing pending, the account's workflow has ended: it holds nothing in Temporal.
    assert all(r["status"] == "completed" and r["provisioning_state"] == "in_sync" for r in own)
    first, *rest = history["pushes"]
    assert first["workflow_id"] == f"order-{order_id}"
    for push in history["pushes"]:
        assert push["outcome"] == "ok" and push["attempt"] == 1 and push["error"] is None
        assert push["scheduled_at"] <= push["finished_at"]
    assert rest[-1]["workflow_id"] == f"account-{account_id}"
    assert history["last_error"] is None
    assert secret not in str(history)


async def test_a_push_waiting_out_an_outage_shows_its_tries_and_why(stack: Stack, faulty_sim: SimulatorProcess) -> None:
    account_id, _ = await _ordered_account(stack)
    await faulty_sim.set_faults(outage_seconds=60)
    changed = await stack.api.patch(f"/v1/accounts/{account_id}", json={"blocked": True}, headers=stack.admin)
    assert changed.status_code == 202

    def retrying(history: dict[str, Any]) -> bool:
        last = history["pushes"][-1] if history["pushes"] else {}
        return last.get("outcome") == "in_progress" and (last.get("attempt") or 0) >= 2 and bool(last.get("error"))

    history = await _history_when(stack, account_id, retrying)
    waiting = history["pushes"][-1]
    assert waiting["workflow_id"] == f"account-{account_id}" and waiting["finished_at"] is None
    assert "503" in waiting["error"] or "unavailable" in waiting["error"].lower(), waiting["error"]
    own = next(r for r in history["workflows"] if r["workflow_id"] == f"account-{account_id}")
    assert own["provisioning_state"] == "pushing"

    await faulty_sim.clear_faults()
    await sync_account(stack.temporal, stack.settings.temporal.task_queue, account_id)
    done = await _history_when(stack, account_id, lambda h: h["pushes"][-1]["outcome"] == "ok")
    # The push that waited ends well on a later try (a push may follow it for the sync).
    retried = next(p for p in done["pushes"] if p["scheduled_at"] == waiting["scheduled_at"])
    assert retried["outcome"] == "ok" and retried["attempt"] >= 2 and retried["error"] is None
    assert done["account"]["status"] == "blocked"


async def test_an_ott_accounts_signups_and_billing_without_temporal(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    number = random_mobile()
    account_id = number.lstrip("+")
    expires = utcnow() + timedelta(minutes=10)
    async with transaction(stack.sessions) as session:
        session.add(
            Account(
                account_id=account_id,
                customer_id=catalog.customer_id,
                product_id=catalog.product_id,
                sip_password="pw-ott-history",
                status=AccountStatus.active,
                provisioning_state=PushStatus.ok,
                created_by="signup:test",
            )
        )
        expired = Signup(signup_id=new_id("su"), phone_number=number, status=SignupState.expired, expires_at=expires)
        verified = Signup(
            signup_id=new_id("su"),
            phone_number=number,
            status=SignupState.verified,
            account_id=account_id,
            expires_at=expires,
        )
        session.add_all([expired, verified])
    history = await _history_when(stack, account_id, lambda h: True)
    assert [s["signup_id"] for s in history["signups"]] == [expired.signup_id, verified.signup_id]

    # The same billing through an API whose Temporal is not there: billing's part, and why the rest is missing.
    away = stack.settings.with_changes(temporal_address=f"127.0.0.1:{free_port()}", api_port=free_port())
    async with serving_api(away) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        response = await api.get(f"/v1/accounts/{account_id}/history", headers=stack.admin)
    assert response.status_code == 200, response.text
    alone = response.json()
    assert alone["temporal"] == "unavailable" and alone["workflows"] == [] and alone["pushes"] == []
    assert len(alone["signups"]) == 2 and alone["account"]["status"] == "active"

    missing = await stack.api.get("/v1/accounts/nobody/history", headers=stack.admin)
    assert missing.status_code == 404
    assert (await stack.api.get(f"/v1/accounts/{account_id}/history", headers=stack.website)).status_code == 403
