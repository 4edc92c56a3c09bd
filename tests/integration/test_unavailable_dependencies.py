"""What the API answers when what it depends on fails: a problem document, 503 with `Retry-After`
for what passes (the billing database or Temporal unreachable), 500 with an error id for what does not."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.catalog import Catalog, order_body
from tests.support.database import sqlite_database
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, WEBSITE_KEY, serving_api, stack_settings
from tests.support.temporal_server import OwnTemporalServer

WEBSITE = {"Authorization": f"Bearer {WEBSITE_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["status"] == 503


@pytest.mark.parametrize("where", ["postgresql", "sqlite"])
async def test_an_unreachable_billing_database_is_a_503_problem(
    where: str, dev_server: str, sim: SimulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.problems")
    if where == "postgresql":  # a server where nothing listens
        database = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    else:  # a migrated file, then a directory where it was: SQLite cannot open it
        database = sqlite_database(tmp_path)
        path = tmp_path / "billing.sqlite3"
        path.unlink()
        path.mkdir()
    settings = stack_settings(dev_server, database, sim)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30.0) as api:
        assert_unavailable(await api.get("/v1/orders/ord-1", headers=WEBSITE))
        body = order_body(Catalog(customer_id="cust-1", product_id="prod-1"))
        assert_unavailable(await api.post("/v1/orders", json=body, headers=WEBSITE))
        assert_unavailable(await api.get("/v1/accounts/acct-1", headers=ADMIN))
    lines = [r.getMessage() for r in caplog.records if r.name == "api.problems"]
    assert any("billing database unavailable" in line and "/v1/orders/ord-1" in line for line in lines)


@asynccontextmanager
async def api_on(
    temporal: OwnTemporalServer, sim: SimulatorProcess, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone (no worker) on `temporal`."""
    settings = stack_settings(temporal.address, sqlite_database(tmp_path), sim)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=60.0) as api:
        yield api


# A change to billing is answered once committed (the outbox tells Temporal later); starting a
# reconciliation is answered only once Temporal has it, so it meets Temporal within the request.
RECONCILE = "/v1/reconciliations"


async def test_an_unreachable_temporal_is_a_503_problem(sim: SimulatorProcess, tmp_path: Path) -> None:
    temporal = OwnTemporalServer(tmp_path / "temporal.db")
    await temporal.start()
    try:
        async with api_on(temporal, sim, tmp_path) as api:
            await temporal.stop()
            assert_unavailable(await api.post(RECONCILE, headers=ADMIN))
    finally:
        await temporal.stop()


async def test_a_call_temporal_refuses_for_good_is_a_500_problem_with_an_error_id_in_the_log(
    sim: SimulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    # A server without the service's search attributes: every start naming them is an invalid argument.
    temporal = OwnTemporalServer(tmp_path / "temporal.db", search_attributes=False)
    await temporal.start()
    try:
        async with api_on(temporal, sim, tmp_path) as api:
            response = await api.post(RECONCILE, headers=ADMIN)
            # An order is stored all the same (202), and the refusal to start it is logged as an error.
            await api.post("/v1/products", json={"product_id": "p", "name": "P"}, headers=ADMIN)
            await api.post("/v1/customer-classes", json={"customer_class_id": "c", "name": "C"}, headers=ADMIN)
            customer = {"customer_id": "cu", "name": "Ada", "customer_class_id": "c"}
            await api.post("/v1/customers", json=customer, headers=ADMIN)
            order = order_body(Catalog(customer_id="cu", product_id="p"))
            assert (await api.post("/v1/orders", json=order, headers=WEBSITE)).status_code == 202
            refusal = f"order {order['order_id']}: Temporal refuses it (INVALID_ARGUMENT"
            for _ in range(100):
                if any(refusal in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the order's refused start was not logged as an error")
    finally:
        await temporal.stop()
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "retry-after" not in response.headers
    error_id = response.json()["error_id"]
    assert error_id in response.json()["detail"]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(error_id in line and "INVALID_ARGUMENT" in line and RECONCILE in line for line in lines), lines
