"""An import survives its worker being killed (SIGKILL) mid-way, and its API and Temporal being stopped
and started again: another worker finishes it, every row exactly once. Also the command-line form of an
import."""

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, func, select

from billing.db import make_sessionmaker, open_billing, snapshot
from billing.models import Account
from tests.support.catalog import new_id, random_imei
from tests.support.database import sqlite_database
from tests.support.polling import eventually
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, serving_api, stack_settings
from tests.support.temporal_server import OwnTemporalServer
from tests.support.worker_process import REPO_ROOT, settings_env, worker_process

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROWS = 60
NDJSON = {"Content-Type": "application/x-ndjson"}


async def _seed(api: httpx.AsyncClient) -> tuple[str, str]:
    customer_class, customer, product = new_id("c"), new_id("u"), new_id("p")
    await api.post("/v1/customer-classes", json={"customer_class_id": customer_class, "name": "C"}, headers=ADMIN)
    body = {"customer_id": customer, "name": "U", "customer_class_id": customer_class}
    assert (await api.post("/v1/customers", json=body, headers=ADMIN)).status_code == 201
    assert (await api.post("/v1/products", json={"product_id": product, "name": "P"}, headers=ADMIN)).status_code == 201
    return customer, product


async def _progress(api: httpx.AsyncClient, import_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/imports/{import_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_an_import_finishes_once_after_its_worker_is_killed_and_its_api_and_temporal_restarted(
    sim: SimulatorProcess, tmp_path: Path
) -> None:
    # A Temporal server of this test's own (its state in a file), stopped and started again mid-import.
    temporal = OwnTemporalServer(tmp_path / "temporal.sqlite3")
    await temporal.start()
    try:
        await _kill_and_restart_everything(temporal, sim, tmp_path)
    finally:
        await temporal.stop()


async def _kill_and_restart_everything(temporal: OwnTemporalServer, sim: SimulatorProcess, tmp_path: Path) -> None:
    # Pages of 5 rows at 5 CMMS calls a second: the import takes seconds, shows progress page by page, and
    # continues as new (every ten pages) on the way.
    settings = stack_settings(
        temporal.address, sqlite_database(tmp_path), sim, cmms_rate_limit_per_second=5.0, import_page_size=5
    )
    ids = sorted(new_id("kill") for _ in range(ROWS))
    late = sorted(new_id("late") for _ in range(3))  # imported while Temporal is down
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        customer, product = await _seed(api)

        def body(account_ids: list[str]) -> bytes:
            rows = [
                {"account_id": i, "customer_id": customer, "product_id": product, "imei": random_imei()}
                for i in account_ids
            ]
            return "".join(json.dumps(r) + "\n" for r in rows).encode()

        await sim.reset_stats()
        async with worker_process(settings, tmp_path / "worker-1.log") as first:
            posted = await api.post("/v1/imports", content=body(ids), headers=ADMIN | NDJSON)
            assert posted.status_code == 202 and posted.json()["accepted"] == ROWS
            import_id = posted.json()["import_id"]
            progress = await eventually(
                lambda: _progress(api, import_id), lambda p: p["done"] >= 5, within=60, what="a page done"
            )
            assert progress["done"] < ROWS, "the import ended before the worker could be killed"
            first.kill()  # SIGKILL: mid-page, activities and account workflows in flight
            await first.wait()
        await temporal.stop()
        # Temporal down: another import is still taken (stored, with the record that will start it).
        posted = await api.post("/v1/imports", content=body(late), headers=ADMIN | NDJSON)
        assert posted.status_code == 202 and posted.json()["accepted"] == 3
        late_id = posted.json()["import_id"]
    # The API too is stopped, and started again with Temporal and a new worker.
    await temporal.start()
    async with (
        serving_api(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
        worker_process(settings, tmp_path / "worker-2.log"),
    ):
        done = await eventually(
            lambda: _progress(api, import_id), lambda p: p["status"] == "completed", within=180, what="completed"
        )
        done_late = await eventually(
            lambda: _progress(api, late_id), lambda p: p["status"] == "completed", within=60, what="late completed"
        )
    assert (done["total"], done["done"], done["failed"], done["rejected"]) == (ROWS, ROWS, 0, 0)
    assert (done_late["total"], done_late["done"]) == (3, 3)
    # Held to the CMMS's rate by the Temporal server (5 a second here; its token bucket may let a little
    # more through at a wall-clock second's edge, hence the margin), never the window's 50 at once.
    assert (await sim.stats())["max_per_second"] <= 2 * 5
    for account_id in ids + late:  # each in the CMMS once, created once: version 1
        record = await sim.get_record(account_id)
        assert record is not None and record.version == 1, account_id
    engine = open_billing(settings.database)
    try:
        async with snapshot(make_sessionmaker(engine)) as session:
            count = (await session.exec(select(func.count()).where(col(Account.account_id).in_(ids + late)))).one()
    finally:
        await engine.dispose()
    assert count == ROWS + 3


async def test_the_command_line_imports_a_file_through_the_same_service(
    dev_server: str, sim: SimulatorProcess, tmp_path: Path
) -> None:
    settings = stack_settings(dev_server, sqlite_database(tmp_path), sim)
    ids = sorted(new_id("cli") for _ in range(3))
    async with (
        serving_api(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
        worker_process(settings, tmp_path / "worker.log"),
    ):
        customer, product = await _seed(api)
        path = tmp_path / "base.csv"
        path.write_text(
            "account_id,customer_id,product_id,imei\n"
            + "".join(f"{i},{customer},{product},{random_imei()}\n" for i in ids)
            + f"{new_id('cli')},{customer},no-such-product,\n"
        )
        env = os.environ | settings_env(settings)

        async def run() -> dict[str, Any]:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.imports",
                str(path),
                cwd=REPO_ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            result: dict[str, Any] = json.loads(out)
            return result

        report = await run()
        assert report["accepted"] == 3 and report["new"] is True
        assert report["rejected"] == [{"line": 5, "reason": "product 'no-such-product' does not exist"}]
        done = await eventually(
            lambda: _progress(api, report["import_id"]), lambda p: p["status"] == "completed", what="completed"
        )
        assert (done["done"], done["rejected"]) == (3, 1)
        again = await run()  # the same file again: the same import, nothing new
        assert again == report | {"new": False}
    for account_id in ids:
        record = await sim.get_record(account_id)
        assert record is not None and record.version == 1
