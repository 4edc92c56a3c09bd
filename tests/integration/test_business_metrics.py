"""Business metrics: the worker exports orders by outcome, CMMS calls by result with their latency, and
SMS by the gateway's answer beside the SDK's metrics; the API's /metrics counts what is in flight from
Temporal (rollouts, stuck orders, accounts waiting for or refused by the CMMS). Labels never carry an
id, a number or a reason."""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.support.catalog import order_body, random_imei, seed_catalog
from tests.support.database import sqlite_database
from tests.support.net import free_port
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.rollouts import seed_accounts
from tests.support.signups import last_code, random_mobile, signup_stack
from tests.support.simulator import SimulatorProcess
from tests.support.stack import Stack, running_stack, serving_api, stack_settings


@pytest.fixture(scope="module")
async def metered(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Stack]:
    """The stack, its worker exporting metrics on a port of its own."""
    settings = stack_settings(dev_server, billing_database, sim, worker_metrics_port=free_port())
    async with running_stack(settings, sim) as stack:
        yield stack


def _value(body: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    total = 0.0
    for line in body.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line) or re.match(rf"^{name} (\S+)$", line)
        if match is None:
            continue
        found = match.group(1) if len(match.groups()) == 2 else ""
        if all(f'{key}="{value}"' in found for key, value in labels.items()):
            total += float(match.groups()[-1])
    return total


async def _scrape_until(url: str, ready: Callable[[str], bool], within: float = 30) -> str:
    async with httpx.AsyncClient() as http:

        async def business() -> str:
            return (await http.get(url)).text

        return await eventually(business, ready, within=within, every=0.2, what=f"metrics of {url}")


async def test_orders_and_cmms_calls_by_outcome_with_bounded_labels(
    metered: Stack, faulty_sim: SimulatorProcess
) -> None:
    stack = metered
    worker_url = f"http://127.0.0.1:{stack.settings.worker.metrics_port}/metrics"
    catalog = await seed_catalog(stack)
    good = order_body(catalog)
    await submit(stack, good)
    assert (await finished(stack, good["order_id"]))["status"] == "completed"

    refused = order_body(catalog)
    squatter = {"password": "Squatter-Secret-2", "imei": refused["account"]["imei"], "profile": "Residential"}
    squatter["domain"] = "x.example"
    put = await stack.sim.http.put(f"/api/v1/accounts/sq-{time.time_ns()}", json=squatter, headers=stack.sim.auth)
    assert put.status_code == 201
    await submit(stack, refused)
    assert (await finished(stack, refused["order_id"]))["status"] == "failed"

    def counted(body: str) -> bool:
        return (
            _value(body, "business_orders_total", outcome="completed") == 1
            and _value(body, "business_orders_total", outcome="failed") == 1
            and _value(body, "business_cmms_calls_total", result="ok", operation="upsert") >= 1
            and _value(body, "business_cmms_calls_total", result="rejected") >= 1
        )

    body = await _scrape_until(worker_url, counted)
    assert _value(body, "business_cmms_call_seconds_count", result="ok") >= 1
    assert "temporal_request" in body  # beside the SDK's own

    # An outage: the tries are counted as unavailable, and the API shows the account waiting. The gauge
    # counts the whole namespace of the session's dev server: other modules' stacks may have left
    # accounts waiting there, so it is read against its value before the outage.
    api_url = f"{stack.api.base_url}".rstrip("/") + "/metrics"
    waiting = _value(await _scrape_until(api_url, lambda b: True), "accounts_waiting_for_cmms")
    [account_id] = await seed_accounts(stack.sessions, catalog.customer_id, catalog.product_id, 1)
    await faulty_sim.set_faults(outage_seconds=60)
    changed = await stack.api.patch(f"/v1/accounts/{account_id}", json={"imei": random_imei()}, headers=stack.admin)
    assert changed.status_code == 202
    body = await _scrape_until(worker_url, lambda b: _value(b, "business_cmms_calls_total", result="unavailable") >= 1)
    api_body = await _scrape_until(api_url, lambda b: _value(b, "accounts_waiting_for_cmms") >= waiting + 1)
    assert _value(api_body, "temporal_visibility_up") == 1
    assert 'rollouts_in_progress{kind="customer"}' in api_body
    await faulty_sim.clear_faults()
    await _scrape_until(api_url, lambda b: _value(b, "accounts_waiting_for_cmms") == waiting)

    for text in (body, api_body):
        for secret_or_id in (good["order_id"], refused["order_id"], account_id, catalog.customer_id, "Squatter"):
            assert secret_or_id not in text


async def test_the_api_answers_its_metrics_while_temporal_is_unreachable(metered: Stack) -> None:
    away = metered.settings.with_changes(temporal_address=f"127.0.0.1:{free_port()}", api_port=free_port())
    async with serving_api(away) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        response = await api.get("/metrics")
    assert response.status_code == 200
    assert _value(response.text, "temporal_visibility_up") == 0


async def test_scrapes_within_the_refresh_interval_count_the_workflows_once(metered: Stack) -> None:
    # /metrics needs no key: however many scrapes come, Temporal's visibility is asked once an interval.
    # The counts are seen run through the API's own counter of them (every API of this test process
    # shares it: the other stacks are not scraped meanwhile).
    hourly = metered.settings.with_changes(api_port=free_port(), api_metrics_refresh_seconds=3600)
    async with serving_api(hourly) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        first = (await api.get("/metrics")).text
        counted = _value(first, "operations_gauges_refreshes_total")
        assert counted >= 1 and _value(first, "temporal_visibility_up") == 1
        at_once = await asyncio.gather(*(api.get("/metrics") for _ in range(10)))
        one_by_one = [await api.get("/metrics") for _ in range(10)]
        for response in [*at_once, *one_by_one]:
            assert response.status_code == 200
            assert _value(response.text, "operations_gauges_refreshes_total") == counted
            assert _value(response.text, "temporal_visibility_up") == 1
    # With no interval, every scrape counts again: what the counter counts is the counts being run.
    eager = metered.settings.with_changes(api_port=free_port(), api_metrics_refresh_seconds=0)
    async with serving_api(eager) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        before = _value((await api.get("/metrics")).text, "operations_gauges_refreshes_total")
        after = _value((await api.get("/metrics")).text, "operations_gauges_refreshes_total")
        assert after == before + 1


async def test_signups_and_sms_by_outcome(dev_server: str, tmp_path: Path) -> None:
    port = free_port()
    database = sqlite_database(tmp_path)
    async with signup_stack(dev_server, database, tmp_path / "sim", worker_metrics_port=port) as stack:
        number = random_mobile()
        started = await stack.sim.http.post("/app/v1/signup", json={"phone_number": number})
        assert started.status_code == 202, started.text
        code = await last_code(stack.sim, number)
        verified = await stack.sim.http.post(
            "/app/v1/verify", json={"signup_id": started.json()["signup_id"], "code": code}
        )
        assert verified.status_code == 200, verified.text

        def counted(body: str) -> bool:
            return (
                _value(body, "business_signups_total", outcome="verified") == 1
                and _value(body, "business_sms_total", result="accepted") == 1
            )

        body = await _scrape_until(f"http://127.0.0.1:{port}/metrics", counted)
    assert number.lstrip("+") not in body
