"""Prometheus metrics: the API's requests by route template and status, and the worker's SDK metrics (the
structured log lines carrying workflow, order and account ids: tests/unit/test_log_masking.py)."""

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from billing.db import make_engine, make_sessionmaker
from clients.cmms import CmmsClient
from core.temporal import connect, metrics_runtime
from tests.support.database import sqlite_database
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess
from tests.support.stack import WEBSITE_KEY, serving_api, stack_settings
from worker import build_workers


async def test_the_api_counts_requests_by_route_template_and_status(
    dev_server: str, sim: SimulatorProcess, tmp_path: Path
) -> None:
    settings = stack_settings(dev_server, sqlite_database(tmp_path), sim)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url) as http:
        website = {"Authorization": f"Bearer {WEBSITE_KEY}"}
        assert (await http.get("/v1/orders/ord-missing-1", headers=website)).status_code == 404
        assert (await http.get("/v1/orders/ord-missing-2", headers=website)).status_code == 404
        assert (await http.get("/v1/orders/ord-missing-3")).status_code == 401
        assert (await http.get("/no/such/path")).status_code == 404
        metrics = await http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()

    def count(route: str, status: str) -> float:
        prefix = f'api_requests_total{{method="GET",route="{route}",status="{status}"}} '
        return sum(float(line.removeprefix(prefix)) for line in lines if line.startswith(prefix))

    # One series per template, not per order id: ids never become label values.
    assert count("/v1/orders/{order_id}", "404") >= 2 and count("/v1/orders/{order_id}", "401") >= 1
    assert count("other", "404") >= 1
    assert not [line for line in lines if "ord-missing" in line]
    assert any(line.startswith("api_request_duration_seconds_bucket") for line in lines)


async def test_the_worker_exports_the_sdks_runtime_metrics(
    dev_server: str, sim: SimulatorProcess, tmp_path: Path
) -> None:
    settings = stack_settings(dev_server, sqlite_database(tmp_path), sim, worker_metrics_port=free_port())
    runtime = metrics_runtime(settings.worker)
    assert runtime is not None
    client = await connect(settings.temporal, runtime=runtime)
    engine = make_engine(settings.database.url)
    async with CmmsClient(settings.cmms.url, settings.cmms.token.get_secret_value()) as cmms, AsyncExitStack() as run:
        for worker in build_workers(client, settings, make_sessionmaker(engine), cmms):
            await run.enter_async_context(worker)
        async with httpx.AsyncClient() as http:
            body = ""
            for _ in range(50):  # pollers register a moment after the workers start
                body = (await http.get(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics")).text
                if "temporal_num_pollers" in body:
                    break
                await asyncio.sleep(0.1)
    await engine.dispose()
    assert "temporal_request" in body  # the client's calls to the server
    assert f'task_queue="{settings.temporal.task_queue}"' in body  # the workers' own series
