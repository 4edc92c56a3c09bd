"""An import survives its worker being killed (SIGKILL) mid-way, and its API being stopped and started
again: another worker finishes it, every row exactly once. Also the command-line form of an import."""

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
from tests.support.worker_process import REPO_ROOT, settings_env, worker_process

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROWS = 40


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


async def test_an_import_finishes_once_after_its_worker_is_killed_and_its_api_restarted(
    dev_server: str, sim: SimulatorProcess, tmp_path: Path
) -> None:
    # Pages of 5 rows at 5 CMMS calls a second: the import takes seconds, and progress shows page by page.
    settings = stack_settings(
        dev_server,
        sqlite_database(tmp_path),
        sim,
        cmms_rate_limit_per_second=5.0,
        import_page_size=5,
    )
    ids = sorted(new_id("kill") for _ in range(ROWS))
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        customer, product = await _seed(api)
        rows = [{"account_id": i, "customer_id": customer, "product_id": product, "imei": random_imei()} for i in ids]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        async with worker_process(settings, tmp_path / "worker-1.log") as first:
            posted = await api.post(
                "/v1/imports", content=body, headers=ADMIN | {"Content-Type": "application/x-ndjson"}
            )
            assert posted.status_code == 202 and posted.json()["accepted"] == ROWS
            import_id = posted.json()["import_id"]
            progress = await eventually(
                lambda: _progress(api, import_id), lambda p: p["done"] >= 5, within=60, what="a page done"
            )
            assert progress["done"] < ROWS, "the import ended before the worker could be killed"
            first.kill()  # SIGKILL: mid-page, activities and account workflows in flight
            await first.wait()
    # The API too is stopped, and started again: the import's state is billing's and Temporal's.
    async with (
        serving_api(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
        worker_process(settings, tmp_path / "worker-2.log"),
    ):
        done = await eventually(
            lambda: _progress(api, import_id), lambda p: p["status"] == "completed", within=180, what="completed"
        )
    assert (done["total"], done["done"], done["failed"], done["rejected"]) == (ROWS, ROWS, 0, 0)
    for account_id in ids:  # each in the CMMS once, created once: version 1
        record = await sim.get_record(account_id)
        assert record is not None and record.version == 1, account_id
    engine = open_billing(settings.database)
    try:
        async with snapshot(make_sessionmaker(engine)) as session:
            count = (await session.exec(select(func.count()).where(col(Account.account_id).in_(ids)))).one()
    finally:
        await engine.dispose()
    assert count == ROWS


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
