"""OTT signup helpers: a stack whose simulator relays the app's calls to it, numbers, codes from the outbox."""

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.cmms.store import Store
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import CMMS_KEY, Stack, running_stack, stack_settings

_CODE = re.compile(r"\b(\d{6})\b")
# The machine's Redis, for the limits kept there (TEST_REDIS_URL overrides); tests use keys of their own.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def random_mobile(prefix: str = "+49151", digits: int = 8) -> str:
    """A valid mobile number in E.164: `prefix` (German by default) and `digits` random digits."""
    return prefix + "".join(secrets.choice("0123456789") for _ in range(digits))


@asynccontextmanager
async def signup_stack(
    temporal_address: str, database_url: str, state_dir: Path, *, verification: str = "billing", **overrides: Any
) -> AsyncIterator[Stack]:
    """The real API, worker and a simulator of its own whose app side relays to this API (and whose
    SMS sink the worker sends to); `verification` (SIGNUP_VERIFICATION) for both."""
    api_port = free_port()
    async with running_simulator(
        state_dir,
        BILLING_API_URL=f"http://127.0.0.1:{api_port}",
        BILLING_API_KEY=CMMS_KEY,
        SIGNUP_VERIFICATION=verification,
    ) as sim:
        settings = stack_settings(
            temporal_address,
            database_url,
            sim,
            api_port=api_port,
            sms_gateway_url=f"{sim.base_url}/cgi-bin/sendsms",
            sms_username=sim.sms_username,
            sms_password=sim.sms_password,
            signup_verification=verification,
            **overrides,
        )
        async with running_stack(settings, sim) as stack:
            yield stack


def signup_stack_fixture(name: str, **overrides: Any) -> Any:
    """A module's `stack` fixture: `signup_stack` on the session's dev server and on each billing database,
    with the module's settings (`overrides`); `name` names its simulator's state directory."""

    @pytest.fixture(scope="module")
    async def stack(
        dev_server: str, billing_database: str, tmp_path_factory: pytest.TempPathFactory
    ) -> AsyncIterator[Stack]:
        async with signup_stack(dev_server, billing_database, tmp_path_factory.mktemp(name), **overrides) as running:
            yield running

    return stack


async def sent_codes(sim: SimulatorProcess, e164: str) -> list[str]:
    """Every code sent to the number, oldest first (read from the SMS outbox, as a test user would)."""
    codes = []
    for message in await sim.outbox(e164):
        found = _CODE.search(message["text"])
        assert found, message
        codes.append(found.group(1))
    return codes


async def last_code(sim: SimulatorProcess, e164: str) -> str:
    codes = await sent_codes(sim, e164)
    assert codes, f"no SMS to {e164}"
    return codes[-1]


async def start_signup(stack: Stack, e164: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await stack.api.post("/v1/signups", json={"phone_number": e164}, headers=headers or stack.cmms)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def verify(stack: Stack, signup_id: str, code: str) -> Any:
    return await stack.api.post(f"/v1/signups/{signup_id}/verify", json={"code": code}, headers=stack.cmms)


def wrong_code(code: str) -> str:
    """A well-formed code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def verified_credentials(stack: Stack, e164: str, api: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """A signup of the number through the API, verified with the code texted to it: the answer's credentials."""
    started = await start_signup(stack, e164)
    answer = await (api or stack.api).post(
        f"/v1/signups/{started['signup_id']}/verify",
        json={"code": await last_code(stack.sim, e164)},
        headers=stack.cmms,
    )
    assert answer.status_code == 200, answer.text
    credentials: dict[str, Any] = answer.json()["credentials"]
    return credentials


def cmms_password(sim: SimulatorProcess, account_id: str) -> str | None:
    """The password the CMMS holds for the account (read from the simulator's own store, as its
    device side would hand it out)."""
    store = Store(sim.state_path)
    try:
        stored = store.get_account(account_id)
    finally:
        store.close()
    return stored.password if stored else None
