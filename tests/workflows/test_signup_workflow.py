"""The signup workflow's policy under Temporal's time-skipping test server: code expiry, the resend
cooldown and send limit, the attempt limit. Real activities: the SMS sink and the CMMS are the real
simulator process, the billing database a real SQLite file."""

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from billing.db import make_engine, make_sessionmaker
from billing.models import Account, AccountStatus, Signup
from billing.otp import code_hmac, password_hmac
from contracts.signups import (
    RESEND_COOLDOWN,
    SEND_LIMIT,
    WRONG_VERIFICATION,
    ConfirmRequest,
    OttSignupInput,
    OttSignupResult,
    SendCodeRequest,
    SignupPolicy,
    SignupState,
    Verification,
    VerifyRequest,
    VerifyResult,
    signup_workflow_id,
)
from core.settings import Settings
from tests.support.database import sqlite_database
from tests.support.signups import last_code, random_mobile, sent_codes
from tests.support.simulator import SimulatorProcess
from tests.support.stack import running_worker, stack_settings
from tests.support.temporal_server import server_address
from workflows.ott_signup import OttSignupWorkflow

POLICY = SignupPolicy()  # the defaults: 10 minutes, 5 tries, 5 sends, 30 s apart


@dataclass
class Env:
    client: Client
    env: WorkflowEnvironment
    settings: Settings
    sim: SimulatorProcess


@pytest.fixture(scope="module")
async def env(
    time_skipping_server: WorkflowEnvironment, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    database_url = sqlite_database(tmp_path_factory.mktemp("signup-wf"))
    address = server_address(time_skipping_server)
    settings = stack_settings(address, database_url, sim, sms_gateway_url=f"{sim.base_url}/cgi-bin/sendsms")
    async with running_worker(settings):
        yield Env(time_skipping_server.client, time_skipping_server, settings, sim)


async def _start(env: Env) -> tuple[WorkflowHandle[OttSignupWorkflow, OttSignupResult], str, str]:
    number, signup_id = random_mobile(), f"su-{secrets.token_hex(8)}"
    handle = await env.client.start_workflow(
        OttSignupWorkflow.run,
        OttSignupInput(signup_id=signup_id, phone_number=number, policy=POLICY),
        id=signup_workflow_id(number),
        task_queue=env.settings.temporal.task_queue,
    )
    view = await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest())
    assert view.sent and view.signup_id == signup_id
    return handle, signup_id, number


async def _verify(
    env: Env, handle: WorkflowHandle[OttSignupWorkflow, OttSignupResult], signup_id: str, code: str
) -> VerifyResult:
    request = VerifyRequest(signup_id=signup_id, code_hmac=code_hmac(env.settings.secret_key, signup_id, code))
    return await handle.execute_update(OttSignupWorkflow.verify, request)


async def _row(env: Env, signup_id: str) -> Signup:
    engine = make_engine(env.settings.database.url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await session.get_one(Signup, signup_id)
    finally:
        await engine.dispose()


def _refusal(err: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


async def test_an_unverified_signup_expires_after_ten_minutes(env: Env) -> None:
    handle, signup_id, number = await _start(env)
    result = await handle.result()  # the test server skips the ten minutes
    assert result.status == SignupState.expired
    row = await _row(env, signup_id)
    assert row.status == SignupState.expired and row.account_id is None
    with pytest.raises(RPCError):  # the workflow is closed: the API answers from the row (410)
        await _verify(env, handle, signup_id, await last_code(env.sim, number))


async def test_resends_wait_out_the_cooldown_and_stop_at_five_each_with_a_new_code(env: Env) -> None:
    handle, signup_id, number = await _start(env)
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest(signup_id=signup_id))
    assert _refusal(early).type == RESEND_COOLDOWN and list(_refusal(early).details) == [30]
    for _ in range(POLICY.max_sends - 1):
        await env.env.sleep(POLICY.resend_cooldown_seconds)
        view = await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest(signup_id=signup_id))
        assert view.sent
    await env.env.sleep(POLICY.resend_cooldown_seconds)
    with pytest.raises(WorkflowUpdateFailedError) as sixth:
        await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest(signup_id=signup_id))
    assert _refusal(sixth).type == SEND_LIMIT
    # A repeated signup request past the limit answers the pending signup and sends nothing.
    again = await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest())
    assert not again.sent and again.signup_id == signup_id

    codes = await sent_codes(env.sim, number)
    assert len(codes) == POLICY.max_sends
    if codes[0] != codes[-1]:  # one chance in a million that they are equal
        stale = await _verify(env, handle, signup_id, codes[0])
        assert not stale.verified and stale.attempts_left == POLICY.max_attempts - 1
    verified = await _verify(env, handle, signup_id, codes[-1])
    assert verified.verified and verified.account_id == number.lstrip("+")
    assert (await handle.result()).status == SignupState.verified
    engine = make_engine(env.settings.database.url)
    async with make_sessionmaker(engine)() as session:
        account = await session.get_one(Account, number.lstrip("+"))
        assert account.status == AccountStatus.active and account.created_by == f"signup:{signup_id}"
    await engine.dispose()


async def test_the_code_lives_ten_minutes_from_its_latest_send(env: Env) -> None:
    handle, signup_id, number = await _start(env)
    await env.env.sleep(POLICY.code_ttl_seconds - 60)
    await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest(signup_id=signup_id))
    await env.env.sleep(120)  # past the first code's lifetime, inside the second's
    verified = await _verify(env, handle, signup_id, await last_code(env.sim, number))
    assert verified.verified


async def test_five_wrong_codes_fail_the_signup_and_the_sixth_try_fails_even_when_right(env: Env) -> None:
    handle, signup_id, number = await _start(env)
    code = await last_code(env.sim, number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    lefts = [(await _verify(env, handle, signup_id, wrong)).attempts_left for _ in range(POLICY.max_attempts)]
    assert lefts == [4, 3, 2, 1, 0]
    assert (await _row(env, signup_id)).status == SignupState.failed  # before the last answer
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):  # refused, or the workflow already closed
        await _verify(env, handle, signup_id, code)
    assert (await handle.result()).status == SignupState.failed
    assert (await _row(env, signup_id)).status == SignupState.failed


async def _start_cmms(env: Env) -> tuple[WorkflowHandle[OttSignupWorkflow, OttSignupResult], str, str]:
    number, signup_id = random_mobile(), f"su-{secrets.token_hex(8)}"
    handle = await env.client.start_workflow(
        OttSignupWorkflow.run,
        OttSignupInput(signup_id=signup_id, phone_number=number, policy=POLICY, verification=Verification.cmms),
        id=signup_workflow_id(number),
        task_queue=env.settings.temporal.task_queue,
    )
    view = await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest())
    assert not view.sent and view.signup_id == signup_id
    return handle, signup_id, number


async def _hold_password(env: Env, signup_id: str, password: str) -> str:
    """What the API does before `confirm`: the CMMS's password on the signup's row, its HMAC for the workflow."""
    issued = password_hmac(env.settings.secret_key, signup_id, password)
    engine = make_engine(env.settings.database.url)
    async with make_sessionmaker(engine)() as session, session.begin():
        row = await session.get_one(Signup, signup_id)
        row.secret_hmac, row.requested_password = issued, password
        session.add(row)
    await engine.dispose()
    return issued


async def test_a_signup_the_cmms_never_confirms_expires_and_billing_texts_nothing(env: Env) -> None:
    handle, signup_id, number = await _start_cmms(env)
    assert (await handle.result()).status == SignupState.expired
    assert (await _row(env, signup_id)).status == SignupState.expired
    assert await sent_codes(env.sim, number) == []


async def test_the_cmms_reporting_the_number_again_keeps_the_signup_open_for_its_confirmation(env: Env) -> None:
    handle, signup_id, number = await _start_cmms(env)
    await env.env.sleep(POLICY.code_ttl_seconds - 60)
    again = await handle.execute_update(OttSignupWorkflow.send_code, SendCodeRequest())  # the CMMS sent a new code
    assert again.signup_id == signup_id and not again.sent
    await env.env.sleep(120)  # past the first report's lifetime, inside the second's
    issued = await _hold_password(env, signup_id, "Issued-by-the-CMMS-7")
    with pytest.raises(WorkflowUpdateFailedError) as wrong_mode:  # billing's own verify is refused
        await _verify(env, handle, signup_id, "123456")
    assert _refusal(wrong_mode).type == WRONG_VERIFICATION
    confirmed = await handle.execute_update(
        OttSignupWorkflow.confirm, ConfirmRequest(signup_id=signup_id, password_hmac=issued)
    )
    assert confirmed.verified and confirmed.account_id == number.lstrip("+")
    assert (await handle.result()).status == SignupState.verified
    engine = make_engine(env.settings.database.url)
    async with make_sessionmaker(engine)() as session:
        account = await session.get_one(Account, number.lstrip("+"))
        assert account.sip_password == "Issued-by-the-CMMS-7" and account.status == AccountStatus.active
        assert (await session.get_one(Signup, signup_id)).requested_password is None  # the account took it
    await engine.dispose()
    assert await sent_codes(env.sim, number) == []
