"""Signups verified by the CMMS (SIGNUP_VERIFICATION=cmms), end to end on real parts: the simulator plays
the CMMS, which texts and checks the code itself and confirms the number to billing with the password it
issued; billing creates the account (ID = the number's digits) and provisions it. On SQLite and PostgreSQL."""

import logging

import pytest

from billing.models import Signup
from contracts.search_attributes import ACCOUNT_ID, PROVISIONING_STATE
from contracts.signups import SignupState, signup_workflow_id
from tests.support.catalog import order_body, seed_catalog
from tests.support.history import dump_histories
from tests.support.orders import finished, submit
from tests.support.signups import (
    cmms_password,
    last_code,
    random_mobile,
    sent_codes,
    signup_stack_fixture,
    start_signup,
    wrong_code,
)
from tests.support.stack import Stack

stack = signup_stack_fixture("signup-cmms", verification="cmms")


async def test_the_cmms_texts_and_checks_the_code_and_billing_creates_the_account(stack: Stack) -> None:
    number = random_mobile()
    digits = number.lstrip("+")
    app = stack.sim.http
    started = await app.post("/app/v1/signup", json={"phone_number": number})
    assert started.status_code == 202, started.text
    signup_id = started.json()["signup_id"]
    assert len(await sent_codes(stack.sim, number)) == 1  # the CMMS's SMS, through the same sink
    pending = (await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)).json()
    assert pending["status"] == "pending" and pending["account_id"] is None

    code = await last_code(stack.sim, number)
    wrong = await app.post("/app/v1/verify", json={"signup_id": signup_id, "code": wrong_code(code)})
    assert wrong.status_code == 422 and wrong.json()["attempts_left"] == 4, wrong.text
    configured = await app.post("/app/v1/verify", json={"signup_id": signup_id, "code": code})
    assert configured.status_code == 200, configured.text
    credentials = configured.json()
    assert credentials["account_id"] == digits and credentials["domain"] == stack.settings.provisioning.default_domain
    assert cmms_password(stack.sim, digits) == credentials["password"]  # the password the CMMS issued

    account = (await stack.api.get(f"/v1/accounts/{digits}", headers=stack.admin)).json()
    assert account["status"] == "active" and account["customer_id"] == stack.settings.signups.ott_customer_id
    assert account["product_id"] == stack.settings.signups.ott_product_id
    signup = (await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)).json()
    assert signup["status"] == "verified" and signup["account_id"] == digits
    # The same picture for ops as when billing verifies: the signup's run, verified, with its account.
    handle = stack.temporal.get_workflow_handle(signup_workflow_id(number))
    await handle.result()
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(PROVISIONING_STATE) == "verified" and attributes.get(ACCOUNT_ID) == digits


async def test_confirm_answers_the_same_for_the_same_password_and_409_for_another(stack: Stack) -> None:
    number = random_mobile()
    signup_id = (await start_signup(stack, number))["signup_id"]
    assert await sent_codes(stack.sim, number) == []  # no SMS from billing in this mode
    url = f"/v1/signups/{signup_id}/confirm"
    first = await stack.api.post(url, json={"password": "Issued-by-the-CMMS-1"}, headers=stack.cmms)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "verified", "account_id": number.lstrip("+")}
    again = await stack.api.post(url, json={"password": "Issued-by-the-CMMS-1"}, headers=stack.cmms)
    assert again.status_code == 200 and again.json() == first.json()
    other = await stack.api.post(url, json={"password": "Another-password-2"}, headers=stack.cmms)
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert cmms_password(stack.sim, number.lstrip("+")) == "Issued-by-the-CMMS-1"
    bad = await stack.api.post(url, json={"password": "short"}, headers=stack.cmms)
    assert bad.status_code == 422 and "short" not in bad.text


async def test_billings_own_verification_calls_answer_409(stack: Stack) -> None:
    signup_id = (await start_signup(stack, random_mobile()))["signup_id"]
    for path, body in (("verify", {"code": "123456"}), ("resend", None)):
        answer = await stack.api.post(f"/v1/signups/{signup_id}/{path}", json=body, headers=stack.cmms)
        assert answer.status_code == 409, answer.text
        assert "the CMMS" in answer.json()["detail"]


async def test_no_code_or_password_in_any_history_search_attribute_memo_or_log(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    number = random_mobile()
    app = stack.sim.http
    signup_id = (await app.post("/app/v1/signup", json={"phone_number": number})).json()["signup_id"]
    code = await last_code(stack.sim, number)
    guess = await app.post("/app/v1/verify", json={"signup_id": signup_id, "code": wrong_code(code)})
    assert guess.status_code == 422
    configured = await app.post("/app/v1/verify", json={"signup_id": signup_id, "code": code})
    password = configured.json()["password"]

    handle = stack.temporal.get_workflow_handle(signup_workflow_id(number))
    await handle.result()
    dump = await dump_histories(stack.temporal, f'WorkflowId = "{handle.id}"')
    assert signup_id in dump.decoded
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    for secret in (code, wrong_code(code), password):
        assert secret not in dump.decoded and secret not in dump.raw
        assert secret not in logged and secret not in stack.sim.log_text()


async def test_a_password_no_account_took_is_not_kept(stack: Stack) -> None:
    """The number belongs to an account a signup cannot claim: 409, and the CMMS's password is dropped."""
    number = random_mobile()
    digits = number.lstrip("+")
    body = order_body(await seed_catalog(stack), account_id=digits)
    await submit(stack, body)
    assert (await finished(stack, body["order_id"]))["status"] == "completed"
    signup_id = (await start_signup(stack, number))["signup_id"]
    answer = await stack.api.post(
        f"/v1/signups/{signup_id}/confirm", json={"password": "Issued-by-the-CMMS-9"}, headers=stack.cmms
    )
    assert answer.status_code == 409 and "cannot claim" in answer.json()["detail"], answer.text
    # Recorded before the answer: whoever heard the refusal reads it at once.
    async with stack.sessions() as session:
        row = await session.get_one(Signup, signup_id)
        assert row.status == SignupState.failed and row.requested_password is None
    assert cmms_password(stack.sim, digits) != "Issued-by-the-CMMS-9"
