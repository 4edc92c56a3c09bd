"""No account can be stolen through a signup: each attack tried for real, end to end (the API, Temporal,
the worker, the SMS sink and the CMMS simulator), on SQLite and PostgreSQL."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import col, select

from billing.models import Account, AccountStatus, RateLimitHit
from tests.support.catalog import new_id, order_body, random_imei, seed_catalog
from tests.support.messaging import wait_for_record
from tests.support.net import free_port
from tests.support.orders import finished, submit
from tests.support.signups import (
    REDIS_URL,
    cmms_password,
    last_code,
    random_mobile,
    sent_codes,
    signup_stack_fixture,
    start_signup,
    verified_credentials,
    verify,
    wrong_code,
)
from tests.support.stack import API_KEYS, Stack, serving_api

stack = signup_stack_fixture("signup-attacks", signup_resend_cooldown_seconds=1)


@pytest.fixture(scope="module")
async def second_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same billing database (as behind a load balancer)."""
    settings = stack.settings.with_changes(api_port=free_port())
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        yield api


async def test_wrong_codes_are_counted_per_number_across_signups_resends_and_api_processes(
    stack: Stack, second_api: httpx.AsyncClient
) -> None:
    """Ten wrong codes a day per number, however they are spread: new signups, resends, two API processes."""
    number = random_mobile()
    apis = [stack.api, second_api]
    refused: list[int] = []
    wrong_answers = 0
    for attempt in range(3):  # three signups of the number, each one five tries long
        signup_id = (await start_signup(stack, number))["signup_id"]
        for guess in range(5):
            if guess == 2:  # a resend in the middle: a new code, the count goes on
                await _resend_after_cooldown(stack, signup_id)
            code = await last_code(stack.sim, number)
            answer = await apis[guess % 2].post(
                f"/v1/signups/{signup_id}/verify", json={"code": wrong_code(code)}, headers=stack.cmms
            )
            if answer.status_code == 422:
                wrong_answers += 1
            else:
                assert answer.status_code == 429, answer.text
                refused.append(int(answer.headers["Retry-After"]))
                break
        if refused:
            break
        assert attempt < 2
    assert wrong_answers == stack.settings.signups.wrong_code_limit
    assert refused and 86000 < refused[0] <= stack.settings.signups.wrong_code_window_seconds
    # Even the right code is refused now: the number is locked for the day.
    right = await verify(stack, signup_id, await last_code(stack.sim, number))
    assert right.status_code == 429, right.text
    assert await stack.sim.get_record(number.lstrip("+")) is None


async def _resend_after_cooldown(stack: Stack, signup_id: str) -> None:
    await asyncio.sleep(stack.settings.signups.resend_cooldown_seconds + 0.1)
    resent = await stack.api.post(f"/v1/signups/{signup_id}/resend", headers=stack.cmms)
    assert resent.status_code == 202, resent.text


@pytest.fixture(scope="module")
async def strict_api(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """An API process with tight verify limits and a CMMS key of its own (its own per-client count)."""
    key = "strict-cmms-key"
    settings = stack.settings.with_changes(
        api_port=free_port(),
        api_keys=SecretStr(f"{key}:cmms,{API_KEYS}"),
        signup_verify_number_limit=2,
        signup_verify_client_limit=4,
    )
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        yield api, {"Authorization": f"Bearer {key}"}


async def test_verify_is_rate_limited_per_number_and_per_client(
    stack: Stack, strict_api: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    api, headers = strict_api
    numbers = [random_mobile() for _ in range(3)]
    ids = [(await start_signup(stack, number))["signup_id"] for number in numbers]
    pairs = zip(ids, numbers, strict=True)
    guesses = {signup_id: wrong_code(await last_code(stack.sim, number)) for signup_id, number in pairs}

    def attempt(signup_id: str) -> Any:
        return api.post(f"/v1/signups/{signup_id}/verify", json={"code": guesses[signup_id]}, headers=headers)

    assert [(await attempt(ids[0])).status_code for _ in range(2)] == [422, 422]
    per_number = await attempt(ids[0])
    assert per_number.status_code == 429 and int(per_number.headers["Retry-After"]) > 0, per_number.text
    assert "verification requests" in per_number.json()["detail"]
    assert per_number.json()["reason"] == "verify_number"
    # The refusal for the one number spent none of the client's four: another number gets two more.
    assert [(await attempt(ids[1])).status_code for _ in range(2)] == [422, 422]
    per_client = await attempt(ids[2])
    assert per_client.status_code == 429 and 0 < int(per_client.headers["Retry-After"]) <= 60, per_client.text
    assert per_client.json()["reason"] == "verify_client"


async def test_an_account_a_signup_did_not_create_is_never_handed_out(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """An MVNO account whose id happens to be the number's digits: refused, logged, left as it was."""
    caplog.set_level(logging.INFO)
    number = random_mobile()
    digits = number.lstrip("+")
    body = order_body(await seed_catalog(stack), account_id=digits)
    await submit(stack, body)
    assert (await finished(stack, body["order_id"]))["status"] == "completed"
    before = await stack.sim.get_record(digits)
    password = cmms_password(stack.sim, digits)

    signup_id = (await start_signup(stack, number))["signup_id"]
    answer = await verify(stack, signup_id, await last_code(stack.sim, number))
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "cannot claim" in answer.json()["detail"] and "password" not in answer.text
    assert any(f"account {digits} (customer" in r.getMessage() for r in caplog.records)
    account = (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).json()
    assert account["customer_id"] != stack.settings.signups.ott_customer_id and account["status"] == "active"
    assert cmms_password(stack.sim, digits) == password and await stack.sim.get_record(digits) == before
    signup = (await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)).json()
    assert signup["status"] == "failed" and signup["account_id"] is None


async def _provision(stack: Stack, imei: str) -> httpx.Response:
    """What a device presenting `imei` receives from the CMMS at first start."""
    return await stack.sim.http.post("/device/v1/provision", json={"imei": imei})


async def test_a_number_cannot_be_pre_claimed_through_a_website_order(stack: Stack) -> None:
    """The takeover: an order for the OTT customer whose account id is a number's digits, with the
    attacker's IMEI, then the owner's signup. The order is refused, and the attacker's IMEI never
    hands out the owner's password."""
    await verified_credentials(stack, random_mobile())  # the OTT customer and product exist, as in production
    number = random_mobile()
    digits = number.lstrip("+")
    attacker_imei = random_imei()
    ott = stack.settings.signups
    body = {
        "order_id": new_id("ord"),
        "customer_id": ott.ott_customer_id,
        "product_id": ott.ott_product_id,
        "account": {"imei": attacker_imei, "account_id": digits},
    }
    ordered = await stack.api.post("/v1/orders", json=body, headers=stack.website)
    assert ordered.status_code == 422, ordered.text
    assert ordered.headers["content-type"] == "application/problem+json"
    problem = ordered.json()
    assert "signup" in problem["detail"] and problem["errors"][0]["field"] == "customer_id", problem
    assert (await stack.api.get(f"/v1/orders/{body['order_id']}", headers=stack.website)).status_code == 404
    assert (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).status_code == 404

    owner = await verified_credentials(stack, number)
    assert owner["account_id"] == digits
    device = await _provision(stack, attacker_imei)
    assert device.status_code == 404, device.text
    assert owner["password"] not in device.text


async def test_an_ott_account_a_signup_did_not_create_is_not_claimed(stack: Stack) -> None:
    """An account of the OTT customer made some other way (an order taken before such orders were
    refused), carrying a device's IMEI: a signup of its number is refused and hands nothing to that
    device."""
    await verified_credentials(stack, random_mobile())  # the OTT customer and product exist
    number = random_mobile()
    digits = number.lstrip("+")
    attacker_imei = random_imei()
    ott = stack.settings.signups
    async with stack.sessions() as session:
        session.add(
            Account(
                account_id=digits,
                customer_id=ott.ott_customer_id,
                product_id=ott.ott_product_id,
                sip_password="an-old-orders-password",
                created_by=f"order:{new_id('ord')}",
                status=AccountStatus.active,
            )
        )
        await session.commit()
    changed = await stack.api.patch(f"/v1/accounts/{digits}", json={"imei": attacker_imei}, headers=stack.admin)
    assert changed.status_code == 202, changed.text
    await wait_for_record(stack.sim, digits, lambda record: record.imei == attacker_imei)

    signup_id = (await start_signup(stack, number))["signup_id"]
    answer = await verify(stack, signup_id, await last_code(stack.sim, number))
    assert answer.status_code == 409, answer.text
    assert "cannot claim" in answer.json()["detail"] and "password" not in answer.text
    assert cmms_password(stack.sim, digits) == "an-old-orders-password"
    device = await _provision(stack, attacker_imei)
    assert device.status_code == 200 and device.json()["password"] == "an-old-orders-password"


async def test_a_claimed_accounts_old_device_stops_provisioning(stack: Stack) -> None:
    """A signup that renews a number's password also takes the old device's IMEI off the account: the
    device that held the number before gets nothing, least of all the new password."""
    number = random_mobile()
    digits = number.lstrip("+")
    await verified_credentials(stack, number)
    old_imei = random_imei()
    changed = await stack.api.patch(f"/v1/accounts/{digits}", json={"imei": old_imei}, headers=stack.admin)
    assert changed.status_code == 202, changed.text
    await wait_for_record(stack.sim, digits, lambda record: record.imei == old_imei)
    assert (await _provision(stack, old_imei)).status_code == 200

    again = await verified_credentials(stack, number)
    await wait_for_record(stack.sim, digits, lambda record: record.imei is None)
    device = await _provision(stack, old_imei)
    assert device.status_code == 404, device.text
    assert again["password"] not in device.text
    account = (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).json()
    assert account["imei"] is None


async def test_a_number_with_an_account_gets_a_new_password_pushed_to_the_cmms(stack: Stack) -> None:
    number = random_mobile()
    digits = number.lstrip("+")
    original = await verified_credentials(stack, number)
    assert cmms_password(stack.sim, digits) == original["password"]

    # Someone else signs the number up again (or the app is reinstalled): a new password, never the old one.
    again = await verified_credentials(stack, number)
    assert again["account_id"] == digits and again["password"] != original["password"]
    assert cmms_password(stack.sim, digits) == again["password"]  # the old device's password stops working
    account = (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).json()
    assert account["status"] == "active" and account["customer_id"] == stack.settings.signups.ott_customer_id


async def test_a_terminated_account_claimed_again_starts_a_new_life(stack: Stack) -> None:
    number = random_mobile()
    digits = number.lstrip("+")
    first = await verified_credentials(stack, number)
    wallet = await stack.api.post(
        f"/v1/accounts/{digits}/wallets", json={"service": "messaging", "balance": 50}, headers=stack.admin
    )
    assert wallet.status_code == 201, wallet.text
    assert (await stack.api.delete(f"/v1/accounts/{digits}", headers=stack.admin)).status_code == 202
    for _ in range(300):
        if await stack.sim.get_record(digits) is None:
            break
        await asyncio.sleep(0.1)
    assert await stack.sim.get_record(digits) is None

    second = await verified_credentials(stack, number)
    assert second["password"] != first["password"]
    account = (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).json()
    assert account["status"] == "active"
    assert (await stack.api.get(f"/v1/accounts/{digits}/wallets/messaging", headers=stack.admin)).status_code == 404
    await wait_for_record(stack.sim, digits, lambda record: True)
    assert cmms_password(stack.sim, digits) == second["password"]


async def test_a_repeated_verify_answers_the_same_credentials_and_sends_nothing(stack: Stack) -> None:
    number = random_mobile()
    digits = number.lstrip("+")
    signup_id = (await start_signup(stack, number))["signup_id"]
    code = await last_code(stack.sim, number)
    first = await verify(stack, signup_id, code)
    assert first.status_code == 200, first.text
    record = await stack.sim.get_record(digits)

    again = await verify(stack, signup_id, code)  # the answer was lost on the way: the CMMS asks again
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert len(await sent_codes(stack.sim, number)) == 1
    assert await stack.sim.get_record(digits) == record  # nothing pushed again

    other = await verify(stack, signup_id, wrong_code(code))  # a guess learns nothing
    assert other.status_code == 409 and "password" not in other.text

    # Once a later signup has renewed the number's password, the old code answers no credentials.
    await verified_credentials(stack, number)
    stale = await verify(stack, signup_id, code)
    assert stale.status_code == 409 and "password" not in stale.text


async def test_with_redis_two_api_processes_share_the_count_of_wrong_codes(stack: Stack) -> None:
    """REDIS_URL set: the limits live in Redis, not in the billing database, and are still shared."""
    settings = stack.settings.with_changes(redis_url=SecretStr(REDIS_URL), signup_wrong_code_limit=3)
    first = settings.with_changes(api_port=free_port())
    second = settings.with_changes(api_port=free_port())
    number = random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    guess = {"code": wrong_code(await last_code(stack.sim, number))}
    async with (
        serving_api(first) as one,
        serving_api(second) as two,
        httpx.AsyncClient(base_url=one) as api_one,
        httpx.AsyncClient(base_url=two) as api_two,
    ):
        answers = [
            (await api.post(f"/v1/signups/{signup_id}/verify", json=guess, headers=stack.cmms)).status_code
            for api in (api_one, api_two, api_one, api_two)
        ]
    assert answers == [422, 422, 422, 429]
    async with stack.sessions() as session:
        kept = select(func.count()).where(col(RateLimitHit.key) == f"wrong-code:{number}")
        assert (await session.exec(kept)).one() == 0  # nothing of it in the billing database


async def test_concurrent_guesses_through_two_api_processes_get_no_extra_tries(stack: Stack) -> None:
    """Five wrong codes at once, through two API processes, against a limit of three a day: three are judged."""
    settings = stack.settings.with_changes(signup_wrong_code_limit=3)
    number = random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    guess = {"code": wrong_code(await last_code(stack.sim, number))}
    async with (
        serving_api(settings.with_changes(api_port=free_port())) as one,
        serving_api(settings.with_changes(api_port=free_port())) as two,
        httpx.AsyncClient(base_url=one, timeout=30) as api_one,
        httpx.AsyncClient(base_url=two, timeout=30) as api_two,
    ):
        answers = await asyncio.gather(
            *(
                api.post(f"/v1/signups/{signup_id}/verify", json=guess, headers=stack.cmms)
                for api in (api_one, api_two, api_one, api_two, api_one)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [422, 422, 422, 429, 429], [answer.text for answer in answers]
