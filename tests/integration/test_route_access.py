"""Every route of the app, called by every kind of caller, answers as the access table
(tests/support/access.py) says."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.problems import PROBLEM_JSON
from tests.support.access import ACCESS, ROUTES, Caller
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import ADMIN_KEY, CMMS_KEY, SHOP_KEY, WEBSITE_KEY, serving_api, stack_settings

KEYS: dict[Caller, str | None] = {
    "no key": None,
    "wrong key": "not-a-key-of-this-api",
    "named website": SHOP_KEY,
    "website": WEBSITE_KEY,
    "cmms": CMMS_KEY,
    "admin": ADMIN_KEY,
}


def expected(route: tuple[str, str], caller: Caller) -> int:
    who, permitted = ACCESS[route]
    if who == "anyone":
        return permitted
    if caller in ("no key", "wrong key"):
        return 401
    if caller == "named website":
        caller = "website"  # a name narrows which orders a website key sees, not which routes it calls
    return permitted if caller in (who, "admin") else 403


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
