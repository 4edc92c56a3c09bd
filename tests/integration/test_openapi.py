"""The OpenAPI document states every error an operation can answer, as a problem document, and the
rules the API checks; a few of the API's answers that property-based testing found out of step with it.
(`tests/integration/test_api_contract.py` holds the whole API to its document.)"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.openapi import ESPF_EVENTS, PROBLEM
from api.problems import PROBLEM_JSON
from core.settings import Settings
from tests.support.catalog import new_id
from tests.support.problems import problem
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, WEBSITE_KEY, serving_api, stack_settings


def document(**settings: Any) -> dict[str, Any]:
    result: dict[str, Any] = create_app(Settings(_env_file=None, environment="test", **settings)).openapi()
    return result


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": op for path, item in doc["paths"].items() for method, op in item.items()}


def test_every_error_is_a_documented_problem_document() -> None:
    doc = document()
    for label, operation in operations(doc).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response["content"]
                assert list(content) == [PROBLEM_JSON], (label, status)
                assert content[PROBLEM_JSON]["schema"] == {"$ref": f"#/components/schemas/{PROBLEM}"}
                assert response["description"], (label, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_what_a_route_depends_on_is_documented() -> None:
    ops = operations(document())
    order = set(ops["POST /v1/orders"]["responses"])
    # Its key, its role, its body, beside PortaBilling, its database and Temporal.
    assert {"202", "200", "400", "401", "403", "409", "413", "422", "500", "503"} <= order
    assert {"401", "403", "404"} <= set(ops["GET /v1/accounts/{account_id}"]["responses"])
    assert set(ops["GET /healthz"]["responses"]) == {"200"}
    reports = set(ops["GET /v1/sms/delivery-reports/{token}"]["responses"])
    assert "401" not in reports and "404" in reports  # no key: its token is the credential


def test_what_a_deployment_decides_is_its_document() -> None:
    assert ESPF_EVENTS not in document()["paths"]  # answered 404 to all with the built-in billing
    beside = operations(document(billing_source="portabilling"))["POST /v1/portabilling/events"]
    assert beside["security"] == [{"espfBasic": []}] and "parameters" not in beside
    code = document(signup_code_digits=8)["components"]["schemas"]["CodeEntered"]["properties"]["code"]
    assert code["pattern"] == "^[0-9]{8}$"


def test_the_schema_states_what_the_code_checks() -> None:
    schemas = document()["components"]["schemas"]
    imei = schemas["OrderedAccount"]["properties"]["imei"]
    assert imei["pattern"] == "^[0-9]{15}$" and imei["format"] == "imei"
    assert schemas["ResellerUpdate"]["anyOf"] and schemas["CustomerUpdate"]["minProperties"] == 1
    assert schemas["TopUp"]["not"]["required"] == ["valid_days", "expires_at"]
    password = schemas["PasswordIssued"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"], password["pattern"]) == (8, 64, "^[!-~]{8,64}$")


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
