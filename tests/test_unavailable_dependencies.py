"""What the API answers when what it depends on fails: a problem document, 503 with `Retry-After`
for what passes (the billing database or Temporal unreachable), 500 with an error id for what does not."""

import logging
from pathlib import Path

import httpx
import pytest

from tests.support.catalog import Catalog, order_body
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, WEBSITE_KEY, serving_api, stack_settings

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
    database = {  # a port where nothing listens; a directory that does not exist
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
        "sqlite": f"sqlite:///{tmp_path / 'missing' / 'billing.sqlite3'}",
    }[where]
    settings = stack_settings(dev_server, database, sim)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30.0) as api:
        assert_unavailable(await api.get("/v1/orders/ord-1", headers=WEBSITE))
        body = order_body(Catalog(customer_id="cust-1", product_id="prod-1"))
        assert_unavailable(await api.post("/v1/orders", json=body, headers=WEBSITE))
        assert_unavailable(await api.get("/v1/accounts/acct-1", headers=ADMIN))
    lines = [r.getMessage() for r in caplog.records if r.name == "api.problems"]
    assert any("billing database unavailable" in line and "/v1/orders/ord-1" in line for line in lines)
