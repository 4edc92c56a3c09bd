"""OTT self-signup end to end: the app's calls through the simulator, the API, Temporal, the worker,
the SMS sink and the CMMS simulator, all real processes or sockets, on SQLite and PostgreSQL."""

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from contracts.provisioning import account_workflow_id
from contracts.signups import signup_workflow_id
from tests.support.history import dump_histories
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.signups import (
    last_code,
    random_mobile,
    sent_codes,
    signup_stack_fixture,
    start_signup,
    verify,
)
from tests.support.stack import API_KEYS, Stack, serving_api

STRICT_KEY = "strict-cmms-key"
STRICT = {"Authorization": f"Bearer {STRICT_KEY}"}


stack = signup_stack_fixture("signup-sim", signup_allowed_countries="DE,FR", signup_number_limit=4)


async def test_the_app_signs_up_and_receives_its_credentials(stack: Stack) -> None:
    number = random_mobile()
    app = stack.sim.http
    started = await app.post("/app/v1/signup", json={"phone_number": number})
    assert started.status_code == 202, started.text
    signup_id = started.json()["signup_id"]
    assert number.lstrip("+") not in signup_id

    configured = await app.post(
        "/app/v1/verify", json={"signup_id": signup_id, "code": await last_code(stack.sim, number)}
    )
    assert configured.status_code == 200, configured.text
    credentials = configured.json()
    account_id = number.lstrip("+")
    assert credentials["account_id"] == account_id and len(credentials["password"]) == 24
    assert (
        credentials["profile"] == "Residential" and credentials["domain"] == stack.settings.provisioning.default_domain
    )

    account = await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)
    assert account.status_code == 200 and account.json()["status"] == "active"
    assert account.json()["customer_id"] == stack.settings.signups.ott_customer_id
    record = await stack.sim.get_record(account_id)
    assert record is not None and record.version == credentials["version"]
    signup = await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)
    assert len(signup.json()["sms"]) == 1  # its delivery reports: see test_sms_delivery_reports.py
    assert signup.json() | {"expires_at": None, "sms": None} == {
        "signup_id": signup_id,
        "status": "verified",
        "expires_at": None,
        "account_id": account_id,
        "sms": None,
    }


async def test_a_second_signup_for_the_number_continues_the_pending_one(stack: Stack) -> None:
    number = random_mobile()
    first = await start_signup(stack, number)
    again = await start_signup(stack, "0049 " + number.removeprefix("+49"))  # another common format
    assert again["signup_id"] == first["signup_id"]
    assert len(await sent_codes(stack.sim, number)) == 1  # inside the cooldown: no second live code

    resend = await stack.api.post(f"/v1/signups/{first['signup_id']}/resend", headers=stack.cmms)
    assert resend.status_code == 429, resend.text
    assert 0 < int(resend.headers["Retry-After"]) <= stack.settings.signups.resend_cooldown_seconds

    verified = await verify(stack, first["signup_id"], await last_code(stack.sim, number))
    assert verified.status_code == 200, verified.text


async def test_wrong_codes_count_and_the_sixth_try_fails_even_when_right(stack: Stack) -> None:
    number = random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    code = await last_code(stack.sim, number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    malformed = await verify(stack, signup_id, "12a456")
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "code"
    for left in (4, 3, 2, 1, 0):
        answer = await verify(stack, signup_id, wrong)
        assert answer.status_code == 422, answer.text
        assert answer.json()["attempts_left"] == left
    # Whoever heard the last "wrong" reads the signup failed at once.
    assert (await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)).json()["status"] == "failed"
    sixth = await verify(stack, signup_id, code)
    assert sixth.status_code == 429, sixth.text
    assert await stack.sim.get_record(number.lstrip("+")) is None


async def test_wrong_input_gets_a_clear_4xx_and_changes_nothing(stack: Stack) -> None:
    post = stack.api.post
    for number, problem in [
        ("12ab", "international format"),
        ("+4930123456", "not a mobile number"),  # a Berlin landline cannot receive the code
        ("+12025550143", "not offered"),  # US: outside SIGNUP_ALLOWED_COUNTRIES=DE,FR
        ("+4915", "not a valid phone number"),
    ]:
        answer = await post("/v1/signups", json={"phone_number": number}, headers=stack.cmms)
        assert answer.status_code == 422, (number, answer.text)
        assert problem in answer.json()["detail"] and answer.json()["errors"][0]["field"] == "phone_number"
    assert (await post("/v1/signups", json={}, headers=stack.cmms)).status_code == 422
    assert (await post("/v1/signups", json={"phone_number": random_mobile()})).status_code == 401
    assert (await post("/v1/signups", json={"phone_number": random_mobile()}, headers=stack.website)).status_code == 403
    assert (await verify(stack, "su-unknown", "123456")).status_code == 404
    assert (await post("/v1/signups/su-unknown/resend", headers=stack.cmms)).status_code == 404
    assert (await stack.api.get("/v1/signups/su-unknown", headers=stack.cmms)).status_code == 404


async def test_requests_past_the_per_number_limit_get_429(stack: Stack) -> None:
    number = random_mobile("+3361", digits=7)  # France is allowed too
    for _ in range(stack.settings.signups.number_limit):
        await start_signup(stack, number)
    over = await stack.api.post("/v1/signups", json={"phone_number": number}, headers=stack.cmms)
    assert over.status_code == 429, over.text
    assert int(over.headers["Retry-After"]) > 0
    assert len(await sent_codes(stack.sim, number)) == 1


async def signup_status(stack: Stack, signup_id: str, *, until: str) -> str:
    """The signup's status once it is `until` (its workflow records the end state as it closes)."""
    status = ""
    for _ in range(200):
        status = (await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)).json()["status"]
        if status == until:
            break
        await asyncio.sleep(0.05)
    return status


@pytest.fixture(scope="module")
async def strict_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process on the same worker and database, with a per-client limit of 2 signup
    requests a minute, codes that live one second, and a CMMS key of its own (limits are shared by
    every API process: the other tests' requests count for the stack's key)."""
    settings = stack.settings.with_changes(
        api_port=free_port(),
        api_keys=SecretStr(f"{API_KEYS},{STRICT_KEY}:cmms"),
        signup_client_limit=2,
        signup_code_ttl_seconds=1,
    )
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        yield api


async def test_requests_past_the_per_client_limit_get_429(stack: Stack, strict_api: httpx.AsyncClient) -> None:
    numbers = [random_mobile() for _ in range(3)]
    for number in numbers[:2]:
        answer = await strict_api.post("/v1/signups", json={"phone_number": number}, headers=STRICT)
        assert answer.status_code == 202, answer.text
    over = await strict_api.post("/v1/signups", json={"phone_number": numbers[2]}, headers=STRICT)
    assert over.status_code == 429, over.text
    assert 0 < int(over.headers["Retry-After"]) <= 60
    assert await sent_codes(stack.sim, numbers[2]) == []


async def test_an_expired_signup_answers_410(stack: Stack, strict_api: httpx.AsyncClient) -> None:
    number = random_mobile()
    started = await strict_api.post("/v1/signups", json={"phone_number": number}, headers=stack.admin)
    assert started.status_code == 202, started.text
    signup_id = started.json()["signup_id"]
    assert await signup_status(stack, signup_id, until="expired") == "expired"
    late = await verify(stack, signup_id, await last_code(stack.sim, number))
    assert late.status_code == 410, late.text
    resend = await stack.api.post(f"/v1/signups/{signup_id}/resend", headers=stack.cmms)
    assert resend.status_code == 410
    assert await stack.sim.get_record(number.lstrip("+")) is None


async def test_the_code_and_the_password_are_in_no_history_search_attribute_or_log(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO, the level the processes run at (LOG_LEVEL): at DEBUG, aiosqlite echoes SQL parameters.
    caplog.set_level(logging.INFO)
    number = random_mobile()
    answer = await stack.sim.http.post("/app/v1/signup", json={"phone_number": number})
    signup_id = answer.json()["signup_id"]
    code = await last_code(stack.sim, number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert (
        await stack.sim.http.post("/app/v1/verify", json={"signup_id": signup_id, "code": wrong})
    ).status_code == 422
    configured = await stack.sim.http.post("/app/v1/verify", json={"signup_id": signup_id, "code": code})
    password = configured.json()["password"]

    handle = stack.temporal.get_workflow_handle(signup_workflow_id(number))
    await handle.result()
    # The history as stored and decoded, with the workflow's search attributes and memo.
    dump = await dump_histories(stack.temporal, f'WorkflowId = "{handle.id}"')
    assert signup_id in dump.decoded  # the payloads were decoded: the search can find things
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    for secret in (code, wrong, password):
        assert secret not in dump.decoded and secret not in dump.raw
        assert secret not in logged
        assert secret not in stack.sim.log_text()


async def test_the_ott_products_initial_wallet_opens_with_the_signups_account(stack: Stack) -> None:
    product_id = stack.settings.signups.ott_product_id
    starter = {"messaging": {"push_events": True, "initial_wallet": {"amount": 20, "valid_days": 7}}}
    created = await stack.api.post(
        "/v1/products", json={"product_id": product_id, "name": "OTT", "service_policies": starter}, headers=stack.admin
    )
    if created.status_code == 409:  # created at the first signup of this module
        patched = await stack.api.patch(
            f"/v1/products/{product_id}", json={"service_policies": starter}, headers=stack.admin
        )
        assert patched.status_code == 200, patched.text
    number = random_mobile()
    started = await stack.sim.http.post("/app/v1/signup", json={"phone_number": number})
    signup_id = started.json()["signup_id"]
    code = await last_code(stack.sim, number)
    configured = await stack.sim.http.post("/app/v1/verify", json={"signup_id": signup_id, "code": code})
    assert configured.status_code == 200, configured.text
    account_id = number.lstrip("+")
    wallet = await stack.api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=stack.admin)
    assert wallet.status_code == 200 and wallet.json()["balance"] == 20, wallet.text
    assert configured.json()["messaging_enabled"] is True  # paid for from the start
    # The account's own workflow is handed the account (by the outbox relay, a lease later) and waits for
    # the 7-day expiry.
    handle = stack.temporal.get_workflow_handle(account_workflow_id(account_id))

    async def status() -> WorkflowExecutionStatus | None:
        try:
            return (await handle.describe()).status
        except RPCError:
            return None

    await eventually(
        status,
        lambda status: status == WorkflowExecutionStatus.RUNNING,
        within=stack.settings.outbox.lease_seconds + 20,
        every=0.5,
        what="the account's workflow running",
    )
