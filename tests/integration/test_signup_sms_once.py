"""One SMS per send: a send retried after a gateway timeout or a worker killed mid-send texts no second
code, and a signup never sends more than SIGNUP_MAX_SENDS messages however often its worker dies."""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.database import sqlite_database
from tests.support.signups import random_mobile, sent_codes, verify
from tests.support.simulator import SimulatorProcess
from tests.support.sms_gateway import SlowGateway, slow_gateway
from tests.support.stack import CMMS_KEY, running_stack, serving_api, stack_settings
from tests.support.worker_process import worker_process

CMMS = {"Authorization": f"Bearer {CMMS_KEY}"}


@pytest.fixture
async def gateway(sim: SimulatorProcess) -> AsyncIterator[SlowGateway]:
    async with slow_gateway(f"{sim.base_url}/cgi-bin/sendsms") as running:
        yield running


async def test_a_gateway_timeout_texts_no_second_code(
    dev_server: str, billing_database: str, sim: SimulatorProcess, gateway: SlowGateway
) -> None:
    """The gateway takes the message but answers after the adapter gave up: counted as sent, not sent again."""
    gateway.delay = 2.0
    settings = stack_settings(
        dev_server,
        billing_database,
        sim,
        sms_gateway_url=gateway.url,
        sms_username=sim.sms_username,
        sms_password=sim.sms_password,
        sms_timeout_seconds=0.5,
    )
    async with running_stack(settings, sim) as stack:
        number = random_mobile()
        started = await stack.api.post("/v1/signups", json={"phone_number": number}, headers=stack.cmms)
        assert started.status_code == 202, started.text
        await asyncio.sleep(2 * gateway.delay)  # time for any retry to have gone out
        codes = await sent_codes(sim, number)
        assert gateway.received == 1 and len(codes) == 1
        assert (await verify(stack, started.json()["signup_id"], codes[0])).status_code == 200


async def test_no_second_code_however_often_the_worker_dies_and_never_more_than_the_send_limit(
    dev_server: str, sim: SimulatorProcess, gateway: SlowGateway, tmp_path: Path
) -> None:
    """Each send: the gateway takes the message, the worker is killed before it hears back, a new worker
    retries the send. The user receives each code once, and the signup stops at its send limit."""
    settings = stack_settings(
        dev_server,
        sqlite_database(tmp_path),
        sim,
        sms_gateway_url=gateway.url,
        sms_username=sim.sms_username,
        sms_password=sim.sms_password,
        signup_max_sends=2,
        signup_resend_cooldown_seconds=1,
    )
    number = random_mobile()
    log = tmp_path / "worker.log"
    async with serving_api(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as api:
        signup_id = ""
        for send in range(1, settings.signups.max_sends + 1):
            gateway.released.clear()  # the gateway holds its answer: the worker dies waiting for it
            async with worker_process(settings, log) as worker:
                if send == 1:
                    request = api.post("/v1/signups", json={"phone_number": number}, headers=CMMS)
                else:
                    await asyncio.sleep(settings.signups.resend_cooldown_seconds)
                    request = api.post(f"/v1/signups/{signup_id}/resend", headers=CMMS)
                answer = asyncio.ensure_future(request)
                await gateway.until_received(send)
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
            gateway.released.set()
            async with worker_process(settings, log):  # retries the send once its attempt times out
                response = await answer
                assert response.status_code == 202, response.text
                signup_id = response.json()["signup_id"]
                assert len(await sent_codes(sim, number)) == send
                if send == settings.signups.max_sends:
                    await asyncio.sleep(settings.signups.resend_cooldown_seconds)
                    over = await api.post(f"/v1/signups/{signup_id}/resend", headers=CMMS)
                    assert over.status_code == 429, over.text
                    code = (await sent_codes(sim, number))[-1]
                    verified = await api.post(f"/v1/signups/{signup_id}/verify", json={"code": code}, headers=CMMS)
                    assert verified.status_code == 200, verified.text
    assert gateway.received == settings.signups.max_sends
    assert len(await sent_codes(sim, number)) == settings.signups.max_sends
