"""The SMS adapter against a real Kannel (Debian's `bearerbox` and `smsbox`, started here with a generated
configuration): a code travels API → worker → smsbox → bearerbox → HTTP SMSC → the simulator's outbox,
and Kannel's delivery reports come back to the API. Skipped, with the reason in the summary, where
Kannel is not installed."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from billing.models import Signup
from clients.kannel import KannelClient, SmsRejected, SmsUnavailable, Submitted
from contracts.signups import signup_workflow_id
from tests.support.database import migrate
from tests.support.kannel import KannelProcess, requires_kannel, running_kannel
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.signups import last_code, random_mobile, start_signup, verify
from tests.support.simulator import SimulatorProcess, running_simulator
from tests.support.stack import CMMS_KEY, Stack, running_stack, stack_settings

pytestmark = requires_kannel


@dataclass
class KannelStack:
    stack: Stack
    kannel: KannelProcess
    sim: SimulatorProcess


@pytest.fixture(scope="module")
async def kannel_stack(dev_server: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KannelStack]:
    state = tmp_path_factory.mktemp("kannel")
    database_url = f"sqlite:///{state / 'billing.sqlite3'}"
    migrate(database_url)
    api_port = free_port()
    async with (
        running_simulator(
            state / "sim", BILLING_API_URL=f"http://127.0.0.1:{api_port}", BILLING_API_KEY=CMMS_KEY
        ) as sim,
        running_kannel(state / "kannel", sim) as kannel,
    ):
        settings = stack_settings(
            dev_server,
            database_url,
            sim,
            api_port=api_port,
            sms_gateway_url=kannel.sendsms_url,
            sms_username=sim.sms_username,
            sms_password=sim.sms_password,
        )
        async with running_stack(settings, sim) as stack:
            yield KannelStack(stack, kannel, sim)


@pytest.fixture
async def smsc(kannel_stack: KannelStack) -> AsyncIterator[SimulatorProcess]:
    """The simulator's SMSC, for a test that changes what it does: back to delivering afterwards."""
    yield kannel_stack.sim
    await kannel_stack.sim.http.put("/_sim/smsc", json={"outcome": "delivered"})


async def _sms_of(stack: Stack, signup_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)
    assert response.status_code == 200, response.text
    sms: list[dict[str, Any]] = response.json()["sms"]
    return sms


async def _wait_for_status(stack: Stack, signup_id: str, status: str, within: float = 15.0) -> list[dict[str, Any]]:
    return await eventually(
        lambda: _sms_of(stack, signup_id),
        lambda sms: bool(sms) and sms[-1]["status"] == status,
        within=within,
        what=f"a {status!r} report",
    )


async def _submissions(sim: SimulatorProcess) -> int:
    count: int = (await sim.http.get("/_sim/smsc")).json()["submissions"]
    return count


async def test_a_code_travels_through_kannel_and_its_delivery_report_comes_back(kannel_stack: KannelStack) -> None:
    stack, sim = kannel_stack.stack, kannel_stack.sim
    number = random_mobile()
    submitted = await _submissions(sim)

    signup = await start_signup(stack, number)
    sms = await _wait_for_status(stack, signup["signup_id"], "delivered")

    # one SMS, submitted by the bearerbox to the SMSC endpoint (not the sink Kannel stands in for)
    assert len(sms) == 1
    assert await _submissions(sim) == submitted + 1
    messages = await sim.outbox(number)
    assert len(messages) == 1 and messages[0]["to"] == number
    assert "Sent SMS [SMSC:sim]" in (kannel_stack.kannel.config.directory / "access.log").read_text()
    # the code that arrived is the one the signup takes
    verified = await verify(stack, signup["signup_id"], await last_code(sim, number))
    assert verified.status_code == 200, verified.text
    metrics = (await stack.api.get("/metrics")).text
    assert 'sms_delivery_reports_total{status="delivered"}' in metrics
    assert 'sms_delivery_reports_total{status="accepted"}' in metrics


async def test_utf8_text_arrives_intact(kannel_stack: KannelStack) -> None:
    sim, number = kannel_stack.sim, random_mobile()
    async with KannelClient(kannel_stack.kannel.sendsms_url, sim.sms_username, sim.sms_password) as client:
        assert await client.send(number, "Ihr Code: 123456 — gültig 10 Minuten") == Submitted.accepted
        assert await client.send(number, "Your code is 654321. @£$¥èé") == Submitted.accepted
    await eventually(lambda: sim.outbox(number), lambda outbox: len(outbox) >= 2, within=10, what="both SMS")
    # The bearerbox submits to an HTTP SMSC on several connections at once, so two messages may
    # arrive in either order (SMS carries no order either); what must hold is every character.
    assert sorted(m["text"] for m in await sim.outbox(number)) == [
        "Ihr Code: 123456 — gültig 10 Minuten",
        "Your code is 654321. @£$¥èé",
    ]


async def test_the_smsc_reports_undelivered_and_rejected_messages(
    kannel_stack: KannelStack, smsc: SimulatorProcess
) -> None:
    stack = kannel_stack.stack
    await smsc.http.put("/_sim/smsc", json={"outcome": "undelivered"})
    undelivered = await start_signup(stack, random_mobile())
    await _wait_for_status(stack, undelivered["signup_id"], "undelivered")

    await smsc.http.put("/_sim/smsc", json={"outcome": "rejected"})
    number = random_mobile()
    rejected = await start_signup(stack, number)
    await _wait_for_status(stack, rejected["signup_id"], "rejected")
    assert await smsc.outbox(number) == []


async def test_bearerbox_stopped_during_a_send_is_retried_and_one_sms_arrives(kannel_stack: KannelStack) -> None:
    stack, kannel, sim = kannel_stack.stack, kannel_stack.kannel, kannel_stack.sim
    number = random_mobile()
    await kannel.stop_bearerbox()
    try:
        signup = asyncio.create_task(start_signup(stack, number))
        await asyncio.sleep(1.0)  # the first tries find no smsbox
        assert not signup.done()
    finally:
        await kannel.start_bearerbox()
    started = await signup

    sms = await _wait_for_status(stack, started["signup_id"], "delivered")
    assert len(sms) == 1
    await asyncio.sleep(1.0)  # nothing else comes late
    assert len(await sim.outbox(number)) == 1
    history = await stack.temporal.get_workflow_handle(signup_workflow_id(number)).fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) > 1


async def test_an_smsbox_refusing_the_credentials_is_a_clear_error_without_retries(
    kannel_stack: KannelStack, caplog: pytest.LogCaptureFixture
) -> None:
    good, kannel, sim = kannel_stack.stack, kannel_stack.kannel, kannel_stack.sim
    # A worker (and API) of its own, whose SMS password the smsbox does not know.
    settings = stack_settings(
        good.settings.temporal.address,
        good.settings.database.url,
        sim,
        sms_gateway_url=kannel.sendsms_url,
        sms_username=sim.sms_username,
        sms_password="not-the-password",
    )
    number = random_mobile()
    async with running_stack(settings, sim) as stack:
        requests = kannel.sendsms_requests()
        with caplog.at_level(logging.ERROR):
            refused = await stack.api.post("/v1/signups", json={"phone_number": number}, headers=stack.cmms)
        assert refused.status_code == 502, refused.text
        assert "Authorization failed for sendsms" in refused.json()["detail"]
        await asyncio.sleep(2.0)  # time for any retry to show
        assert kannel.sendsms_requests() == requests + 1
        assert any("Authorization failed for sendsms" in r.getMessage() for r in caplog.records)

        async with stack.sessions() as session:
            signup = (await session.exec(select(Signup).where(Signup.phone_number == number))).one()
        sms = await _sms_of(stack, signup.signup_id)
        assert [(m["status"], "Authorization failed for sendsms" in m["error"]) for m in sms] == [("rejected", True)]
        assert "not-the-password" not in refused.text and "not-the-password" not in caplog.text
    assert await sim.outbox(number) == []


async def test_the_adapter_maps_kannel_answers(
    kannel_stack: KannelStack, smsc: SimulatorProcess, tmp_path: Path
) -> None:
    kannel, sim = kannel_stack.kannel, kannel_stack.sim
    async with KannelClient(kannel.sendsms_url, sim.sms_username, "wrong") as client:
        with pytest.raises(SmsRejected, match=r"\(403\): Authorization failed for sendsms"):
            await client.send(random_mobile(), "x")
    # A bearerbox whose SMSC defers every message, with room for few: once full, it refuses for now (503).
    await smsc.http.put("/_sim/smsc", json={"outcome": "unavailable"})
    async with (
        running_kannel(tmp_path, sim, outgoing_queue_limit=1) as small,
        KannelClient(small.sendsms_url, sim.sms_username, sim.sms_password) as client,
    ):
        refused: SmsUnavailable | None = None
        for _ in range(10):
            try:
                assert await client.send(random_mobile(), "deferred") == Submitted.accepted
            except SmsUnavailable as err:
                refused = err
                break
        assert refused is not None and "answered 503: Temporal failure, try again later" in str(refused)
    # no smsbox listening at all (it stops whenever its bearerbox does): worth a retry too
    async with KannelClient(f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms", "u", "p") as client:
        with pytest.raises(SmsUnavailable, match="unreachable"):
            await client.send(random_mobile(), "x")
