"""Nothing is lost between billing and the CMMS, whatever fails: the whole system as separate processes
(`make run`'s, via bench/harness.py), changes of every kind made while (a) Temporal is stopped, (b) the
worker is SIGKILLed, (c) an API process is SIGKILLed between its commit and the delivery to Temporal
(Temporal hung with SIGSTOP, so the delivery cannot finish first). Afterwards every account's CMMS record
is what billing says, and every wallet balance is exact."""

import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import BenchStack, bench_stack
from billing.db import make_engine, make_sessionmaker, snapshot
from billing.models import Account
from devstack.temporal_server import wait_until_listening
from tests.support.catalog import new_id, random_imei
from tests.support.polling import eventually
from workflows.policies import CMMS_STEP_TIMEOUT

ADMIN = {"Authorization": "Bearer dev-admin-key"}
WEBSITE = {"Authorization": "Bearer dev-website-key"}
CMMS = {"Authorization": "Bearer dev-cmms-token"}
PROFILES = ("Residential", "Business")


@dataclass
class Expected:
    """What billing has been told, as the test keeps count of it."""

    customer_id: str
    product_id: str
    profile: str = PROFILES[0]
    blocked: dict[str, bool] = field(default_factory=dict)
    balance: dict[str, int] = field(default_factory=dict)
    imei: dict[str, str] = field(default_factory=dict)


async def _ok(response: Awaitable[httpx.Response], *statuses: int) -> dict[str, Any]:
    answered = await response
    assert answered.status_code in statuses, answered.text
    body: dict[str, Any] = answered.json()
    return body


async def _eventually(check: Callable[[], Awaitable[str | None]], within: float) -> None:
    """Until `check` finds nothing wrong (None), for at most `within` seconds."""
    await eventually(check, lambda wrong: wrong is None, within=within, every=0.25, what="convergence")


async def _seed(api: httpx.AsyncClient, accounts: int) -> Expected:
    class_id, expected = new_id("class"), Expected(new_id("cust"), new_id("prod"))
    body = {"customer_class_id": class_id, "name": "Retail", "custom_fields": ["profileName", "domain"]}
    await _ok(api.post("/v1/customer-classes", json=body, headers=ADMIN), 201)
    customer = {"customer_id": expected.customer_id, "name": "Ada", "customer_class_id": class_id}
    customer["custom_fields"] = {"profileName": expected.profile}  # type: ignore[assignment]
    await _ok(api.post("/v1/customers", json=customer, headers=ADMIN), 201)
    product = {"product_id": expected.product_id, "name": "M", "service_policies": {"messaging": {"push_events": True}}}
    await _ok(api.post("/v1/products", json=product, headers=ADMIN), 201)
    orders = []
    for _ in range(accounts):
        imei = random_imei()
        order = {
            "order_id": new_id("ord"),
            "customer_id": expected.customer_id,
            "product_id": expected.product_id,
            "account": {"imei": imei},
        }
        accepted = await _ok(api.post("/v1/orders", json=order, headers=WEBSITE), 202)
        orders.append(accepted["order_id"])
        expected.imei[accepted["account_id"]] = imei
        expected.blocked[accepted["account_id"]] = False

    async def completed() -> str | None:
        for order_id in orders:
            view = await _ok(api.get(f"/v1/orders/{order_id}", headers=WEBSITE), 200)
            if view["status"] != "completed":
                return f"order {order_id} is {view['status']}"
        return None

    await _eventually(completed, 60)
    for account_id in expected.blocked:
        wallet = {"service": "messaging", "balance": 3}
        await _ok(api.post(f"/v1/accounts/{account_id}/wallets", json=wallet, headers=ADMIN), 201)
        expected.balance[account_id] = 3
    return expected


async def _change_everything(api: httpx.AsyncClient, expected: Expected) -> None:
    """One change of every kind: block or unblock, a new password, the customer's profile, wallet movements
    (one account drained to zero, so its messaging must end suspended), the product's policy."""
    expected.profile = PROFILES[1] if expected.profile == PROFILES[0] else PROFILES[0]
    patch = {"custom_fields": {"profileName": expected.profile}}
    await _ok(api.patch(f"/v1/customers/{expected.customer_id}", json=patch, headers=ADMIN), 202)
    for index, account_id in enumerate(expected.blocked):
        expected.blocked[account_id] = not expected.blocked[account_id]
        change = {"blocked": expected.blocked[account_id], "password": f"Pw-{secrets.token_hex(8)}"}
        await _ok(api.patch(f"/v1/accounts/{account_id}", json=change, headers=ADMIN), 202)
        path = f"/v1/accounts/{account_id}/wallets/messaging"
        if index == 0 and expected.balance[account_id] > 0:
            charge = {"amount": expected.balance[account_id]}
            key = {"Idempotency-Key": secrets.token_hex(8)}
            await _ok(api.post(f"{path}/charges", json=charge, headers=ADMIN | key), 200)
            expected.balance[account_id] = 0
        else:
            key = {"Idempotency-Key": secrets.token_hex(8)}
            await _ok(api.post(f"{path}/top-ups", json={"amount": 2}, headers=ADMIN | key), 200)
            expected.balance[account_id] += 2
    policy = {"service_policies": {"messaging": {"push_events": True}}}
    await _ok(api.patch(f"/v1/products/{expected.product_id}", json=policy, headers=ADMIN), 200)


async def _converged(stack: BenchStack, api: httpx.AsyncClient, expected: Expected) -> str | None:
    """None when every CMMS record and wallet is what billing says; else the first difference."""
    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        async with snapshot(make_sessionmaker(engine)) as session, httpx.AsyncClient(base_url=stack.sim_url) as sim:
            for account_id, blocked in expected.blocked.items():
                account = await session.get_one(Account, account_id)
                if (account.status == "blocked") != blocked:
                    return f"billing has {account_id} {account.status}"
                record = (await sim.get(f"/api/v1/accounts/{account_id}", headers=CMMS)).json()
                wanted = {
                    "blocked": blocked,
                    "profile": expected.profile,
                    "messaging_enabled": expected.balance[account_id] > 0,
                }
                seen = {name: record.get(name) for name in wanted}
                if seen != wanted:
                    return f"CMMS has {account_id} {seen}, billing says {wanted}"
                device = await sim.post("/device/v1/provision", json={"imei": expected.imei[account_id]})
                if blocked and device.status_code != 403:
                    return f"the device of blocked {account_id} is answered {device.status_code}"
                if not blocked and device.json().get("password") != account.sip_password:
                    return f"the device of {account_id} does not get billing's password"
                wallet = await _ok(api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=ADMIN), 200)
                if wallet["balance"] != expected.balance[account_id]:
                    return f"wallet of {account_id}: {wallet['balance']}, expected {expected.balance[account_id]}"
    finally:
        await engine.dispose()
    return None


async def test_no_change_is_lost_when_temporal_the_worker_or_an_api_process_fails() -> None:
    async with (
        bench_stack(OUTBOX_LEASE_SECONDS="3", OUTBOX_POLL_SECONDS="0.5", LOG_LEVEL="INFO") as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api,
    ):
        expected = await _seed(api, accounts=3)
        temporal_port = int(stack.temporal_address.rsplit(":", 1)[1])

        # (a) Temporal stopped: every change is answered, stored, and delivered once it is back.
        stack.processes["temporal"].terminate()
        await stack.processes["temporal"].wait()
        await _change_everything(api, expected)
        await stack.start_again("temporal")
        await wait_until_listening(temporal_port)
        await _eventually(lambda: _converged(stack, api, expected), 30)

        # (b) The worker SIGKILLed: the workflows wait for the next one. A CMMS push the killed worker had
        # under way (the last changes' pushes may still run as they converge) is taken by the next one
        # once its step's timeout ends: no worker reports it lost before that.
        stack.processes["worker"].send_signal(signal.SIGKILL)
        await stack.processes["worker"].wait()
        await _change_everything(api, expected)
        await stack.start_again("worker")
        await _eventually(lambda: _converged(stack, api, expected), CMMS_STEP_TIMEOUT.total_seconds() + 30)

        # (c) Temporal hung, so the API's deliveries cannot finish; the API SIGKILLed with them in flight.
        temporal_pid = stack.pid("temporal")
        os.kill(temporal_pid, signal.SIGSTOP)
        try:
            await _change_everything(api, expected)
            stack.processes["api"].send_signal(signal.SIGKILL)
            await stack.processes["api"].wait()
        finally:
            os.kill(temporal_pid, signal.SIGCONT)
        await stack.start_again("api")
        await stack.wait_api()
        await _eventually(lambda: _converged(stack, api, expected), 30)
