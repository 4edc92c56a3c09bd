"""SMS pumping and code guessing made unprofitable, and no caller starving the others: the budgets per
prefix, per country and per day, the automatic pause of a range whose signups are not verified, and the
global wrong-code budget, tried end to end (the API over HTTP, Temporal, the worker, the simulator's SMS
sink and CMMS), on SQLite and PostgreSQL, with the counts in the billing database."""

import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import col, select

from billing.models import RateLimitHit
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.signups import (
    last_code,
    random_mobile,
    sent_codes,
    signup_stack_fixture,
    start_signup,
    verify,
    wrong_code,
)
from tests.support.stack import API_KEYS, Stack, serving_api

stack = signup_stack_fixture("signup-budgets")

ApiWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api_with(stack: Stack) -> ApiWith:
    """Another API process on the stack's database and worker, with some settings changed (the counts
    are the billing database's, so it shares them with the stack's own API)."""

    @asynccontextmanager
    async def serve(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = stack.settings.with_changes(api_port=free_port(), **changes)
        async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
            yield api

    return serve


def fresh_prefix(country_code: str = "+49151") -> str:
    """A prefix (a number without its last four digits) no other test uses."""
    return country_code + "".join(secrets.choice("0123456789") for _ in range(4))


async def hits(stack: Stack, key: str) -> int:
    """How many counted hits the billing database holds under `key`."""
    async with stack.sessions() as session:
        return (await session.exec(select(func.count()).where(col(RateLimitHit.key) == key))).one()


async def metric(api: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A counter's value on the API's /metrics (0 when it has no such series yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:{{{re.escape(wanted)}}})? (\S+)$" if wanted else rf"^{name} (\S+)$")
    for line in (await api.get("/metrics")).text.splitlines():
        found = pattern.match(line)
        if found:
            return float(found.group(1))
    return 0.0


async def sms_count(stack: Stack, numbers: list[str]) -> int:
    """How many code SMS the simulator's sink received for the numbers."""
    count = 0
    for number in numbers:
        count += len(await sent_codes(stack.sim, number))
    return count


# --- no caller starves the others ---


async def test_one_number_hammered_leaves_the_per_client_budget_to_every_other_number(stack: Stack) -> None:
    """620 signup requests for one number (past its limit of 10 an hour), then another number: 202. The
    refusals for the one number are not counted in the caller's budget of 600 a minute, nor are the
    requests that sent nothing (a pending signup continued inside its cooldown)."""
    number = random_mobile()
    statuses = [
        (await stack.api.post("/v1/signups", json={"phone_number": number}, headers=stack.cmms)).status_code
        for _ in range(620)
    ]
    assert statuses.count(202) == stack.settings.signups.number_limit
    assert statuses.count(429) == 620 - stack.settings.signups.number_limit
    assert len(await sent_codes(stack.sim, number)) == 1
    other = await stack.api.post("/v1/signups", json={"phone_number": random_mobile()}, headers=stack.cmms)
    assert other.status_code == 202, other.text


async def test_one_signup_hammered_with_guesses_leaves_the_per_client_budget_to_every_other_signup(
    stack: Stack,
) -> None:
    """620 verifies of one signup (past its number's limit of 20 an hour), then another signup's verify is
    judged: the per-client budget counts the verifies the workflow judged, nothing else."""
    number, other = random_mobile(), random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    other_id = (await start_signup(stack, other))["signup_id"]
    guess = wrong_code(await last_code(stack.sim, number))
    statuses = [(await verify(stack, signup_id, guess)).status_code for _ in range(620)]
    assert statuses.count(422) == stack.settings.signups.max_attempts
    assert set(statuses) == {422, 429}
    judged = await verify(stack, other_id, await last_code(stack.sim, other))
    assert judged.status_code == 200, judged.text


# --- SMS pumping ---


async def test_sixty_signups_of_a_prefix_none_verified_send_at_most_twenty_sms(stack: Stack) -> None:
    """Fresh numbers of one range, none ever verified (as pumped numbers never are): the range is paused
    after 20 SMS; the refusals are 429 problem documents naming the reason, counted on /metrics; another
    range is not affected."""
    prefix = fresh_prefix()
    numbers = [f"{prefix}{i:04d}" for i in range(60)]
    refused_before = await metric(stack.api, "signup_refused_total", reason="prefix_paused")
    paused_before = await metric(stack.api, "signup_paused_total", scope="prefix")
    answers = [await stack.api.post("/v1/signups", json={"phone_number": n}, headers=stack.cmms) for n in numbers]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [202] * 20 + [429] * 40, statuses
    refusal = answers[-1]
    assert refusal.headers["content-type"] == "application/problem+json"
    assert refusal.json()["reason"] == "prefix_paused", refusal.text
    assert 0 < int(refusal.headers["Retry-After"]) <= stack.settings.signups.pause_seconds
    assert await sms_count(stack, numbers) == 20
    assert await metric(stack.api, "signup_refused_total", reason="prefix_paused") == refused_before + 40
    assert await metric(stack.api, "signup_paused_total", scope="prefix") == paused_before + 1
    await start_signup(stack, random_mobile(fresh_prefix(), 4))  # another range still signs up


async def test_a_range_whose_signups_are_verified_is_never_paused(stack: Stack) -> None:
    prefix = fresh_prefix()
    for i in range(24):
        number = f"{prefix}{i:04d}"
        started = await start_signup(stack, number)
        answer = await verify(stack, started["signup_id"], await last_code(stack.sim, number))
        assert answer.status_code == 200, answer.text


async def test_the_prefix_budget_refuses_with_its_reason_and_sends_nothing(stack: Stack, api_with: ApiWith) -> None:
    prefix = fresh_prefix()
    numbers = [f"{prefix}{i:04d}" for i in range(3)]
    async with api_with(signup_prefix_hourly_budget=2) as api:
        statuses = [
            (await api.post("/v1/signups", json={"phone_number": n}, headers=stack.cmms)).status_code for n in numbers
        ]
        over = await api.post("/v1/signups", json={"phone_number": f"{prefix}9999"}, headers=stack.cmms)
    assert statuses == [202, 202, 429]
    assert over.status_code == 429 and over.json()["reason"] == "prefix_budget", over.text
    assert 0 < int(over.headers["Retry-After"]) <= 3600
    assert await sms_count(stack, numbers) == 2
    assert await sent_codes(stack.sim, f"{prefix}9999") == []


async def test_the_country_budget_refuses_with_its_reason(stack: Stack, api_with: ApiWith) -> None:
    """French numbers (+33 61…), which no other test sends to: two an hour, then 429 for any French range;
    Belgian numbers have a budget of their own."""
    numbers = [random_mobile("+3361", 7) for _ in range(3)]
    async with api_with(signup_country_hourly_budget=2) as api:
        answers = [await api.post("/v1/signups", json={"phone_number": n}, headers=stack.cmms) for n in numbers]
        belgian = await api.post("/v1/signups", json={"phone_number": random_mobile("+3247", 7)}, headers=stack.cmms)
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[-1].json()["reason"] == "country_budget"
    assert belgian.status_code == 202, belgian.text
    assert await sms_count(stack, numbers) == 2


async def test_a_country_whose_signups_are_not_verified_is_paused(stack: Stack, api_with: ApiWith) -> None:
    """Dutch numbers (+31 61…) over many ranges, none verified: the country is paused after its minimum."""
    numbers = [random_mobile("+3161", 7) for _ in range(6)]
    async with api_with(signup_country_pause_min_sends=4) as api:
        answers = [await api.post("/v1/signups", json={"phone_number": n}, headers=stack.cmms) for n in numbers]
    assert [answer.status_code for answer in answers] == [202] * 4 + [429] * 2
    assert answers[-1].json()["reason"] == "country_paused"
    assert await sms_count(stack, numbers) == 4


async def test_the_daily_budget_refuses_with_its_reason(stack: Stack, api_with: ApiWith) -> None:
    sent_today = await hits(stack, "signup:sms:all")
    numbers = [random_mobile() for _ in range(2)]
    async with api_with(signup_daily_budget=sent_today + 1) as api:
        answers = [await api.post("/v1/signups", json={"phone_number": n}, headers=stack.cmms) for n in numbers]
    assert [answer.status_code for answer in answers] == [202, 429]
    assert answers[-1].json()["reason"] == "daily_budget"
    assert await sent_codes(stack.sim, numbers[1]) == []


async def test_a_refusal_by_a_budget_does_not_consume_the_per_client_budget(stack: Stack, api_with: ApiWith) -> None:
    """A caller of its own with three signups a minute: the prefix's one send counts, its nine refusals
    do not, so two more numbers still get their codes (and a third is the caller's fourth: 429)."""
    key = f"budget-cmms-{secrets.token_hex(4)}"
    headers = {"Authorization": f"Bearer {key}"}
    prefix = fresh_prefix()
    keys = SecretStr(f"{API_KEYS},{key}:cmms")
    async with api_with(api_keys=keys, signup_prefix_hourly_budget=1, signup_client_limit=3) as api:
        statuses = [
            (await api.post("/v1/signups", json={"phone_number": f"{prefix}{i:04d}"}, headers=headers)).status_code
            for i in range(10)
        ]
        others = [
            (await api.post("/v1/signups", json={"phone_number": random_mobile()}, headers=headers)).status_code
            for _ in range(3)
        ]
    assert statuses == [202] + [429] * 9
    assert others == [202, 202, 429]


# --- guessing across numbers ---


async def test_over_the_global_wrong_code_budget_each_number_gets_fewer_guesses(
    stack: Stack, api_with: ApiWith
) -> None:
    """Wrong codes across numbers past the hour's budget: every number's allowance drops to 3 and an alert
    counter moves; a number's right code within its allowance is still accepted."""
    spent = await hits(stack, "wrong-code:all")
    alerts_before = await metric(stack.api, "signup_wrong_code_budget_spent_total")
    spenders = [random_mobile() for _ in range(2)]
    victim, owner = random_mobile(), random_mobile()
    ids = {n: (await start_signup(stack, n))["signup_id"] for n in [*spenders, victim, owner]}
    async with api_with(signup_wrong_code_hourly_budget=spent + 2) as api:

        async def guess(number: str) -> int:
            code = wrong_code(await last_code(stack.sim, number))
            answer = await api.post(f"/v1/signups/{ids[number]}/verify", json={"code": code}, headers=stack.cmms)
            return answer.status_code

        assert [await guess(n) for n in spenders] == [422, 422]  # the budget is spent
        assert [await guess(victim) for _ in range(4)] == [422, 422, 422, 429]
        right = await api.post(
            f"/v1/signups/{ids[owner]}/verify",
            json={"code": await last_code(stack.sim, owner)},
            headers=stack.cmms,
        )
        assert right.status_code == 200, right.text
    assert await metric(stack.api, "signup_wrong_code_budget_spent_total") > alerts_before


async def test_a_verify_that_times_out_keeps_its_guess_counted(stack: Stack, api_with: ApiWith) -> None:
    """The API cannot tell whether the workflow judged a code it stopped waiting for (and counted it
    wrong): the verify's place in the number's wrong codes stays taken. Here the CMMS is slow, so the
    right code's verify outlives the API's patience; the same code again picks up the credentials."""
    number = random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    code = {"code": await last_code(stack.sim, number)}
    await stack.sim.set_faults(latency_ms=2000)
    try:
        async with api_with(signup_verify_timeout_seconds=0.2) as api:
            answer = await api.post(f"/v1/signups/{signup_id}/verify", json=code, headers=stack.cmms)
        assert answer.status_code == 503, answer.text
        assert await hits(stack, f"wrong-code:{number}") == 1
    finally:
        await stack.sim.clear_faults()

    async def verified() -> bool:
        answer = await stack.api.post(f"/v1/signups/{signup_id}/verify", json=code, headers=stack.cmms)
        return answer.status_code == 200

    await eventually(verified, every=1, what="the credentials after the slow provisioning")


async def test_a_signup_no_worker_answers_is_a_503_not_a_hung_request(stack: Stack, api_with: ApiWith) -> None:
    """The signup workflow's task queue has no worker (all down, or Temporal overloaded): the request
    answers 503 with Retry-After once SIGNUP_SEND_TIMEOUT_SECONDS has passed, instead of waiting on."""
    quiet = f"no-worker-{secrets.token_hex(4)}"
    async with api_with(temporal_task_queue=quiet, signup_send_timeout_seconds=1) as api:
        answer = await api.post("/v1/signups", json={"phone_number": f"{fresh_prefix()}0000"}, headers=stack.cmms)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "did not answer in time" in answer.json()["detail"]
