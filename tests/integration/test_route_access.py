"""Every route of the app, called by every kind of caller, answers as the access table says.

The routes come from the app itself, so a route added without a line in ACCESS fails here: each
route ships with a decision on who may call it. The README's "Who may do what" mirrors ACCESS.
"""

import re
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from api.app import create_app
from api.problems import PROBLEM_JSON
from core.settings import Settings
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, CMMS_KEY, WEBSITE_KEY, serving_api, stack_settings

Who = Literal["anyone", "website", "cmms", "admin"]
Caller = Literal["no key", "wrong key", "website", "cmms", "admin"]

# (method, route template) → who may call it, and what a permitted call answers here: the test sends
# an empty JSON object as the body and ids that do not exist, so a permitted call meets validation
# (422) or a missing resource (404); what matters is that it is neither 401 nor 403.
ACCESS: dict[tuple[str, str], tuple[Who, int]] = {
    ("GET", "/healthz"): ("anyone", 200),
    ("GET", "/metrics"): ("anyone", 200),
    ("GET", "/openapi.json"): ("anyone", 200),
    ("GET", "/docs"): ("anyone", 200),
    ("POST", "/v1/orders"): ("website", 422),
    ("GET", "/v1/orders"): ("website", 200),
    ("GET", "/v1/orders/{order_id}"): ("website", 404),
    ("POST", "/v1/signups"): ("cmms", 422),
    ("GET", "/v1/signups/{signup_id}"): ("cmms", 404),
    ("GET", "/v1/signups"): ("cmms", 200),
    ("POST", "/v1/signups/{signup_id}/resend"): ("cmms", 404),
    ("POST", "/v1/signups/{signup_id}/verify"): ("cmms", 422),
    ("POST", "/v1/signups/{signup_id}/confirm"): ("cmms", 422),
    ("POST", "/v1/accounts/{account_id}/wallets/messaging/charges"): ("cmms", 422),
    ("POST", "/v1/resellers"): ("admin", 422),
    ("GET", "/v1/resellers/{reseller_id}"): ("admin", 404),
    ("GET", "/v1/resellers"): ("admin", 200),
    ("PATCH", "/v1/resellers/{reseller_id}"): ("admin", 422),
    ("POST", "/v1/customer-classes"): ("admin", 422),
    ("GET", "/v1/customer-classes/{customer_class_id}"): ("admin", 404),
    ("POST", "/v1/customers"): ("admin", 422),
    ("GET", "/v1/customers/{customer_id}"): ("admin", 404),
    ("GET", "/v1/customers"): ("admin", 200),
    ("DELETE", "/v1/customers/{customer_id}"): ("admin", 404),
    ("PATCH", "/v1/customers/{customer_id}"): ("admin", 422),
    ("GET", "/v1/customers/{customer_id}/rollout"): ("admin", 404),
    ("POST", "/v1/products"): ("admin", 422),
    ("GET", "/v1/products/{product_id}"): ("admin", 404),
    ("GET", "/v1/products"): ("admin", 200),
    ("PATCH", "/v1/products/{product_id}"): ("admin", 404),
    ("GET", "/v1/accounts/{account_id}"): ("admin", 404),
    ("GET", "/v1/accounts"): ("admin", 200),
    ("GET", "/v1/accounts/{account_id}/history"): ("admin", 404),
    ("GET", "/v1/audit"): ("admin", 422),  # `object` is required
    ("PATCH", "/v1/accounts/{account_id}"): ("admin", 404),
    ("DELETE", "/v1/accounts/{account_id}"): ("admin", 404),
    ("POST", "/v1/accounts/{account_id}/wallets"): ("admin", 422),
    ("GET", "/v1/accounts/{account_id}/wallets/messaging"): ("admin", 404),
    ("GET", "/v1/accounts/{account_id}/wallets/messaging/movements"): ("admin", 404),
    ("POST", "/v1/accounts/{account_id}/wallets/messaging/top-ups"): ("admin", 422),
    ("PUT", "/v1/accounts/{account_id}/service-policies/messaging"): ("admin", 422),
    # Kannel fetches a report's URL: its per-message token is the credential, not an API key.
    ("GET", "/v1/sms/delivery-reports/{token}"): ("anyone", 422),
    ("POST", "/v1/sms/delivery-reports/{token}"): ("anyone", 422),
    # PortaBilling's ESPF authenticates with HTTP Basic, not an API key, and only beside PortaBilling
    # (BILLING_SOURCE=portabilling; its own access is tested in tests/test_portabilling_events.py).
    ("POST", "/v1/portabilling/events"): ("anyone", 404),
    ("POST", "/v1/reconciliations"): ("admin", 202),  # it takes no body: a run is started
    ("GET", "/v1/reconciliations/{reconciliation_id}"): ("admin", 404),
}
KEYS: dict[Caller, str | None] = {
    "no key": None,
    "wrong key": "not-a-key-of-this-api",
    "website": WEBSITE_KEY,
    "cmms": CMMS_KEY,
    "admin": ADMIN_KEY,
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, template) of every route the app serves (HEAD goes with GET)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


ROUTES = sorted(app_routes(create_app(Settings(_env_file=None, environment="test"))))


def expected(route: tuple[str, str], caller: Caller) -> int:
    who, permitted = ACCESS[route]
    if who == "anyone":
        return permitted
    if caller in ("no key", "wrong key"):
        return 401
    return permitted if caller in (who, "admin") else 403


def test_every_route_has_an_access_decision() -> None:
    assert set(ROUTES) - set(ACCESS) == set(), "a route without a line in ACCESS: decide who may call it"
    assert set(ACCESS) - set(ROUTES) == set(), "ACCESS names a route the app no longer has"


def test_the_website_reads_only_its_orders() -> None:
    website = {route for route, (who, _) in ACCESS.items() if who == "website"}
    assert website == {("POST", "/v1/orders"), ("GET", "/v1/orders"), ("GET", "/v1/orders/{order_id}")}


@pytest.fixture(scope="module")
async def api(dev_server: str, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    settings = stack_settings(dev_server, sqlite_database(tmp_path_factory.mktemp("access")), sim)
    async with serving_api(settings) as url:
        yield url


@pytest.mark.parametrize("caller", list(KEYS))
@pytest.mark.parametrize("route", ROUTES, ids=" ".join)
async def test_every_route_answers_every_caller_as_the_table_says(
    api: str, route: tuple[str, str], caller: Caller
) -> None:
    method, template = route
    path = re.sub(r"\{(\w+)\}", lambda m: f"no-such-{m[1].replace('_', '-')}", template)
    key = KEYS[caller]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: dict[str, object] | None = {} if method in ("POST", "PUT", "PATCH") else None
    async with httpx.AsyncClient(base_url=api) as http:
        response = await http.request(method, path, headers=headers, json=body)
    assert response.status_code == expected(route, caller), response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM_JSON
