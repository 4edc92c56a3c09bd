"""A few of the API's answers that property-based testing found out of step with its OpenAPI document (the
document itself: tests/unit/test_openapi.py).
(`tests/integration/test_api_contract.py` holds the whole API to its document.)"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.catalog import new_id
from tests.support.problems import problem
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, WEBSITE_KEY, serving_api, stack_settings


@pytest.fixture(scope="module")
async def api(dev_server: str, sim: SimulatorProcess, billing_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving_api(stack_settings(dev_server, billing_database, sim)) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        yield c


async def test_a_method_the_path_does_not_serve_is_answered_with_all_it_does(api: httpx.AsyncClient) -> None:
    # The router named only the first route's: `Allow: POST` for /v1/orders, which serves GET too.
    for method, path, allowed in [
        ("OPTIONS", "/v1/orders", "GET, POST"),
        ("PUT", "/v1/sms/delivery-reports/x", "GET, POST"),
        ("DELETE", "/healthz", "GET"),
    ]:
        response = await api.request(method, path)
        problem(response, 405)
        assert response.headers["allow"] == allowed, (method, path)


async def test_what_the_schema_refuses_the_api_refuses(api: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    website = {"Authorization": f"Bearer {WEBSITE_KEY}"}
    # A number is no date-time (pydantic took it for seconds since 1970).
    problem(await api.get("/v1/orders", params={"created_since": "0.5"}, headers=website), 422)
    # 0 is no boolean (pydantic took it for false).
    policies = {"messaging": {"push_events": 0}}
    product = {"product_id": new_id("p"), "name": "P", "service_policies": policies}
    problem(await api.post("/v1/products", json=product, headers=admin), 422)
    problem(await api.patch("/v1/accounts/no-such", json={"blocked": 1}, headers=admin), 422)


async def test_what_the_schema_accepts_the_api_accepts(api: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # 5.0 is JSON Schema's integer 5 (a strict integer refused it); "5" and true stay refused.
    policies: dict[str, Any] = {"messaging": {"push_events": True, "initial_wallet": {"amount": 5.0}}}
    product = {"product_id": new_id("p"), "name": "P", "service_policies": policies}
    created = await api.post("/v1/products", json=product, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["service_policies"]["messaging"]["initial_wallet"] == {"amount": 5}
    for amount in ("5", True):
        policies["messaging"]["initial_wallet"] = {"amount": amount}
        product["product_id"] = new_id("p")
        problem(await api.post("/v1/products", json=product, headers=admin), 422)


async def test_a_date_time_past_the_calendar_in_utc_is_no_server_error(api: httpx.AsyncClient) -> None:
    """RFC 3339 allows `0001-01-01T00:00:00+05:00`, which is before year 1 in UTC: billing's conversion to
    UTC overflowed (500). It is the first instant there is now, as the last is for one past 9999."""
    website = {"Authorization": f"Bearer {WEBSITE_KEY}"}
    for since in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        response = await api.get("/v1/orders", params={"created_since": since}, headers=website)
        assert response.status_code == 200, response.text


async def test_nul_in_a_string_is_refused_never_a_server_error(api: httpx.AsyncClient) -> None:
    """PostgreSQL's text holds no NUL (U+0000): a path, a filter or a name with one made psycopg fail (500).
    The schema's patterns refuse it, on either database."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/customers/a%00b", {}),
        ("GET", "/v1/signups/a%00b", {}),
        ("GET", "/v1/orders", {"params": {"customer_id": "a\x00b"}}),
        ("GET", "/v1/audit", {"params": {"object": "customer:a\x00"}}),
        ("POST", "/v1/products", {"json": {"product_id": new_id("p"), "name": "a\x00b"}}),
        (
            "POST",
            "/v1/customer-classes",
            {"json": {"customer_class_id": new_id("c"), "name": "C", "custom_fields": ["a\x00"]}},
        ),
    ]
    for method, path, kwargs in calls:
        problem(await api.request(method, path, headers=admin, **kwargs), 422)


async def test_a_key_the_api_refuses_is_one_the_schema_refuses(api: httpx.AsyncClient) -> None:
    # A custom field named with a NUL is refused: the schema says so of the names, not only of the values.
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    document = (await api.get("/openapi.json")).json()
    [fields, _] = document["components"]["schemas"]["CustomerUpdate"]["properties"]["custom_fields"]["anyOf"]
    assert "patternProperties" not in fields and fields["propertyNames"]["pattern"] == r"^[^\x00]*$"
    assert fields["additionalProperties"]["anyOf"][1] == {"type": "null"}
    problem(await api.patch("/v1/customers/no-such", json={"custom_fields": {"a\x00": "x"}}, headers=admin), 422)
