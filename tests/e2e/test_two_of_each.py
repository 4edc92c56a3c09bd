"""Past one machine: two API processes and two workers (each its own OS process, `python -m api` and
`python worker.py`, as Compose's `--scale api=2 --scale worker=2` runs them) on one Temporal and one
PostgreSQL billing database, with the CMMS simulator. Orders sent to both APIs (some repeated on the
other one), account changes through both, a bulk import sent to both, and wallet expiries: each is done
exactly once (the CMMS counts every write that changed a record), and both workers ran activities."""

import asyncio
import json
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.harness import REPO_ROOT
from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening
from tests.support.catalog import new_id, random_imei
from tests.support.database import fresh_database
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.processes import stop_process

ADMIN = {"Authorization": "Bearer dev-admin-key"}
WEBSITE = {"Authorization": "Bearer dev-website-key"}
CMMS = {"Authorization": "Bearer dev-cmms-token"}
ORDERS, REPEATED, CHANGED, IMPORTED = 8, 4, 3, 4
# Activities each worker ran, from the SDK's Prometheus metrics (one sample per activity type).
ACTIVITY_RUNS = re.compile(r"^temporal_activity_execution_latency(?:_seconds)?_count\{(.*)\} (\d+)", re.M)


@dataclass
class Stack:
    apis: list[httpx.AsyncClient]
    sim: httpx.AsyncClient
    worker_metrics: list[str]
    temporal_address: str


async def _ok(response: Any, *statuses: int) -> dict[str, Any]:
    answered: httpx.Response = await response
    assert answered.status_code in statuses, answered.text
    body: dict[str, Any] = answered.json()
    return body


async def _answers(url: str, process: asyncio.subprocess.Process, name: str) -> None:
    async with httpx.AsyncClient(timeout=2) as client:

        async def up() -> bool:
            assert process.returncode is None, f"{name} exited with {process.returncode}"
            try:
                return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, within=90, every=0.2, what=f"{name} answering at {url}")


@asynccontextmanager
async def two_of_each(var: Path) -> AsyncIterator[Stack]:
    """Temporal (dev server), the CMMS simulator, two workers and two APIs on a fresh PostgreSQL database."""
    with fresh_database("postgresql", var) as database_url:
        temporal_port, sim_port = free_port(), free_port()
        api_ports, metrics_ports = [free_port(), free_port()], [free_port(), free_port()]
        env = os.environ | {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "DATABASE_URL": database_url,
            "CMMS_SIM_PORT": str(sim_port),
            "CMMS_SIM_STATE": str(var / "cmms-sim.sqlite3"),
            "CMMS_URL": f"http://127.0.0.1:{sim_port}",
            "SMS_GATEWAY_URL": f"http://127.0.0.1:{sim_port}/cgi-bin/sendsms",
            "RECONCILE_EVERY": "off",  # a scheduled run would write to the CMMS too; every write here is counted
            "OUTBOX_POLL_SECONDS": "0.5",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        processes: list[asyncio.subprocess.Process] = []

        async def spawn(name: str, *argv: str, **extra: str) -> asyncio.subprocess.Process:
            with (var / f"{name}.log").open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    *argv, cwd=REPO_ROOT, env=env | extra, stdout=log, stderr=asyncio.subprocess.STDOUT
                )
            processes.append(process)
            return process

        try:
            args = dev_server_args(host="127.0.0.1", port=temporal_port, ui_port=None, db_file=var / "temporal.db")
            await spawn("temporal", str(cli_path()), *args)
            await wait_until_listening(temporal_port)
            sim = await spawn("simulator", sys.executable, "-m", "simulators.cmms")
            await _answers(f"http://127.0.0.1:{sim_port}/healthz", sim, "simulator")
            for index, port in enumerate(metrics_ports):
                worker = await spawn(f"worker{index}", sys.executable, "worker.py", WORKER_METRICS_PORT=str(port))
                await _answers(f"http://127.0.0.1:{port}/metrics", worker, f"worker {index}")
                log = var / f"worker{index}.log"

                async def polling(log: Path = log) -> bool:
                    return b"worker polling task queue" in await asyncio.to_thread(log.read_bytes)

                # Both poll before the first order, so that either may be handed its tasks.
                await eventually(polling, within=60, what=f"worker {index} polling its task queues")
            for index, port in enumerate(api_ports):
                # The app side of signups and SMS reports would name one API; neither is used here.
                api = await spawn(f"api{index}", sys.executable, "-m", "api", API_PORT=str(port))
                await _answers(f"http://127.0.0.1:{port}/healthz", api, f"api {index}")
            async with AsyncExitStack() as clients:
                apis = [
                    await clients.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=30))
                    for p in api_ports
                ]
                sim_client = await clients.enter_async_context(
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}", headers=CMMS, timeout=30)
                )
                yield Stack(
                    apis=apis,
                    sim=sim_client,
                    worker_metrics=[f"http://127.0.0.1:{p}/metrics" for p in metrics_ports],
                    temporal_address=env["TEMPORAL_ADDRESS"],
                )
        finally:
            for process in reversed(processes):
                await stop_process(process)


async def _record(stack: Stack, account_id: str) -> dict[str, Any]:
    response = await stack.sim.get(f"/api/v1/accounts/{account_id}")
    return response.json() if response.status_code == 200 else {}


async def _catalog(api: httpx.AsyncClient) -> tuple[str, str, str]:
    """A customer, a product and a product that drives messaging (no initial wallet)."""
    class_id, customer_id, product_id, messaging_id = new_id("class"), new_id("cust"), new_id("prod"), new_id("msg")
    body = {"customer_class_id": class_id, "name": "Retail", "custom_fields": []}
    await _ok(api.post("/v1/customer-classes", json=body, headers=ADMIN), 201)
    customer = {"customer_id": customer_id, "name": "Ada", "customer_class_id": class_id}
    await _ok(api.post("/v1/customers", json=customer, headers=ADMIN), 201)
    await _ok(api.post("/v1/products", json={"product_id": product_id, "name": "M"}, headers=ADMIN), 201)
    messaging = {"product_id": messaging_id, "name": "Msg", "service_policies": {"messaging": {"push_events": True}}}
    await _ok(api.post("/v1/products", json=messaging, headers=ADMIN), 201)
    return customer_id, product_id, messaging_id


async def _orders(stack: Stack, customer_id: str, product_id: str) -> list[str]:
    """ORDERS orders, alternately to each API; REPEATED of them sent again, with the same order_id, to the
    other API at once (both in flight together). Each is provisioned once: CMMS version 1."""
    sent = [
        {"order_id": new_id("ord"), "customer_id": customer_id, "product_id": product_id, "account": {"imei": imei}}
        for imei in (random_imei() for _ in range(ORDERS))
    ]
    answers = await asyncio.gather(
        *(
            _ok(stack.apis[i % 2].post("/v1/orders", json=order, headers=WEBSITE), 200, 202)
            for i, order in enumerate(sent)
        ),
        *(
            _ok(stack.apis[(i + 1) % 2].post("/v1/orders", json=order, headers=WEBSITE), 200, 202)
            for i, order in enumerate(sent[:REPEATED])
        ),
    )
    accounts = [answer["account_id"] for answer in answers[:ORDERS]]
    assert [answer["account_id"] for answer in answers[ORDERS:]] == accounts[:REPEATED]
    assert len(set(accounts)) == ORDERS

    async def completed() -> list[str]:
        views = [await _ok(stack.apis[0].get(f"/v1/orders/{o['order_id']}", headers=WEBSITE), 200) for o in sent]
        return [view["status"] for view in views]

    await eventually(completed, lambda s: set(s) == {"completed"}, within=120, every=0.5, what="every order completed")
    for account_id in accounts:
        assert (await _record(stack, account_id))["version"] == 1, account_id
    return accounts


async def _changes(stack: Stack, account_id: str) -> None:
    """Block, unblock, a new password: alternately through each API, each reaching the CMMS once (one new
    version each, in this order) before the next is made."""
    changes: list[dict[str, Any]] = [{"blocked": True}, {"blocked": False}, {"password": f"Pw-{secrets.token_hex(8)}"}]
    for step, change in enumerate(changes):
        await _ok(stack.apis[step % 2].patch(f"/v1/accounts/{account_id}", json=change, headers=ADMIN), 202)

        def landed(record: dict[str, Any], version: int = 2 + step) -> bool:
            return record.get("version") == version

        record = await eventually(
            lambda: _record(stack, account_id),
            landed,
            within=60,
            every=0.2,
            what=f"change {step} of {account_id} at the CMMS",
        )
        assert record["blocked"] is change.get("blocked", False), record


async def _import(stack: Stack, customer_id: str, product_id: str) -> list[str]:
    """One NDJSON file sent to both APIs: one import (the same id, the second an answer of what it is),
    each row provisioned once."""
    rows = [
        {"account_id": new_id("imp"), "customer_id": customer_id, "product_id": product_id, "imei": random_imei()}
        for _ in range(IMPORTED)
    ]
    body = "\n".join(json.dumps(row) for row in rows) + "\n"
    headers = ADMIN | {"Content-Type": "application/x-ndjson"}
    first, second = await asyncio.gather(
        _ok(stack.apis[0].post("/v1/imports", content=body, headers=headers), 200, 202),
        _ok(stack.apis[1].post("/v1/imports", content=body, headers=headers), 200, 202),
    )
    assert first["import_id"] == second["import_id"] and first["accepted"] == second["accepted"] == IMPORTED
    progress = f"/v1/imports/{first['import_id']}"
    view = await eventually(
        lambda: _ok(stack.apis[1].get(progress, headers=ADMIN), 200),
        lambda v: v["status"] == "completed",
        within=120,
        every=0.5,
        what="the import completed",
    )
    assert (view["done"], view["failed"]) == (IMPORTED, 0), view
    accounts = [row["account_id"] for row in rows]
    for account_id in accounts:
        assert (await _record(stack, account_id))["version"] == 1, account_id
    return accounts


async def _expiry(stack: Stack, account_id: str, index: int) -> None:
    """A top-up whose units last a few seconds, through one API or the other: messaging resumes, then the
    account's workflow writes the units off once and the CMMS is told once."""
    wallet = f"/v1/accounts/{account_id}/wallets/messaging"
    # Long enough for the top-up to reach the CMMS first on a loaded machine (it takes well under a second).
    soon = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
    key = {"Idempotency-Key": secrets.token_hex(8)}
    await _ok(
        stack.apis[index % 2].post(f"{wallet}/top-ups", json={"amount": 7, "expires_at": soon}, headers=ADMIN | key),
        200,
        201,
    )
    await eventually(
        lambda: _record(stack, account_id),
        lambda r: r.get("version") == 3 and r.get("messaging_enabled") is False,
        within=90,
        every=0.25,
        what=f"{account_id}'s units expired at the CMMS",
    )
    movements = await _ok(
        stack.apis[(index + 1) % 2].get(f"{wallet}/movements", params={"limit": 50}, headers=ADMIN), 200
    )
    kinds = [(item["kind"], item["amount"]) for item in movements["items"]]
    assert kinds == [("top_up", 7), ("expiry", -7)], kinds


async def _activities_run(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(url)).text
    return sum(int(count) for _, count in ACTIVITY_RUNS.findall(text))


async def test_two_apis_and_two_workers_do_each_thing_exactly_once(tmp_path: Path) -> None:
    async with two_of_each(tmp_path) as stack:
        customer_id, product_id, messaging_id = await _catalog(stack.apis[0])
        ordered = await _orders(stack, customer_id, product_id)
        await asyncio.gather(*(_changes(stack, account_id) for account_id in ordered[:CHANGED]))
        imported = await _import(stack, customer_id, messaging_id)
        await asyncio.gather(*(_expiry(stack, account_id, i) for i, account_id in enumerate(imported)))

        # Every write that changed a CMMS record, counted by the CMMS: none doubled, none missing.
        stats = await _ok(stack.sim.get("/_sim/stats"), 200)
        assert stats["writes"] == ORDERS + 3 * CHANGED + IMPORTED + 2 * IMPORTED, stats
        client = await Client.connect(stack.temporal_address)
        orders = await client.count_workflows("WorkflowType = 'MvnoOrderWorkflow'")
        imports = await client.count_workflows("WorkflowType = 'ImportWorkflow'")
        assert (orders.count, imports.count) == (ORDERS, 1)
        runs = [await _activities_run(url) for url in stack.worker_metrics]
        assert all(count > 0 for count in runs), f"activities run by each worker: {runs}"
