"""An order survives its worker being stopped mid-flight: another worker finishes it, once."""

import asyncio
from pathlib import Path

import httpx

from contracts.orders import MvnoOrderResult
from core.gateway import result_once_started
from core.temporal import connect
from tests.support.catalog import Catalog, order_body
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, WEBSITE_KEY, running_worker, serving_api, stack_settings

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WEBSITE = {"Authorization": f"Bearer {WEBSITE_KEY}"}


async def _seed(api: httpx.AsyncClient) -> Catalog:
    await api.post("/v1/customer-classes", json={"customer_class_id": "c", "name": "C"}, headers=ADMIN)
    await api.post("/v1/customers", json={"customer_id": "u", "name": "U", "customer_class_id": "c"}, headers=ADMIN)
    await api.post("/v1/products", json={"product_id": "p", "name": "P"}, headers=ADMIN)
    return Catalog(customer_id="u", product_id="p")


async def test_an_order_completes_after_its_worker_is_stopped_during_a_cmms_outage(
    dev_server: str, faulty_sim: SimulatorProcess, tmp_path: Path
) -> None:
    settings = stack_settings(dev_server, sqlite_database(tmp_path), faulty_sim)
    temporal = await connect(settings.temporal)
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url) as api:
        body = order_body(await _seed(api))
        order_url = f"/v1/orders/{body['order_id']}"

        await faulty_sim.set_faults(outage_seconds=3600)
        async with running_worker(settings):
            assert (await api.post("/v1/orders", json=body, headers=WEBSITE)).status_code == 202
            for _ in range(100):  # until the first worker is retrying against the unavailable CMMS
                view = (await api.get(order_url, headers=WEBSITE)).json()
                if view["provisioning_state"] == "retry":
                    break
                await asyncio.sleep(0.1)
            assert view["status"] == "provisioning" and view["provisioning_state"] == "retry"

        # That worker is gone; the CMMS comes back; a new worker picks the order up where it was.
        await faulty_sim.clear_faults()
        async with running_worker(settings):
            order = result_once_started(temporal, f"order-{body['order_id']}", MvnoOrderResult)
            result = await asyncio.wait_for(order, 60)
        assert result.status == "completed"
        view = (await api.get(order_url, headers=WEBSITE)).json()
        assert view["status"] == "completed" and view["provisioning_state"] == "ok"
        record = await faulty_sim.get_record(view["account_id"])
        assert record is not None and record.version == 1
