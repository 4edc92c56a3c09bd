"""The credentials a phone receives, proven where they are used: a real Kamailio registrar (Debian's
`kamailio`, `devstack/kamailio/kamailio.cfg`) reads the subscriber table the account's workflow keeps
beside the CMMS, and sipp plays the phone: it fetches its credentials by IMEI from the CMMS simulator and
REGISTERs with them (401 challenge, then the digest). On SQLite and on PostgreSQL (billing's database and
the registrar's alike). Skipped, with the reason in the summary, where Kamailio or sipp is not installed."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from billing.models import Account
from clients.sip_registrar import ha1, ha1b
from tests.support.catalog import new_id, order_body, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.signups import random_mobile, verified_credentials
from tests.support.simulator import SimulatorProcess
from tests.support.sip import SipStack, requires_sip, running_sip_stack

pytestmark = requires_sip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def sip(
    request: pytest.FixtureRequest, dev_server: str, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SipStack]:
    backend: str = request.param
    state = tmp_path_factory.mktemp(f"sip-{backend}")
    async with running_sip_stack(
        backend,
        dev_server,
        sim,
        state,
        sms_gateway_url=f"{sim.base_url}/cgi-bin/sendsms",  # signups' codes to the simulator's sink
        sms_username=sim.sms_username,
        sms_password=sim.sms_password,
    ) as sip:
        yield sip


async def _ordered_phone(sip: SipStack, **catalog: Any) -> dict[str, Any]:
    """An order, completed; then what the phone gets from the CMMS by its IMEI."""
    stack = sip.stack
    body = order_body(await seed_catalog(stack, **catalog))
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    device = await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})
    assert device.status_code == 200, device.text
    credentials: dict[str, Any] = device.json()
    credentials |= {"order_id": body["order_id"], "imei": body["account"]["imei"]}
    return credentials


async def _registers(sip: SipStack, phone: dict[str, Any], password: str | None = None) -> bool:
    return await sip.kamailio.registers(phone["domain"], phone["account_id"], password or phone["password"])


async def _patch_account(sip: SipStack, account_id: str, body: dict[str, Any]) -> None:
    response = await sip.stack.api.patch(f"/v1/accounts/{account_id}", json=body, headers=sip.stack.admin)
    assert response.status_code == 202, response.text


async def test_an_ordered_phone_registers_with_the_credentials_the_cmms_gives_it(sip: SipStack) -> None:
    phone = await _ordered_phone(sip, custom_fields={"domain": "voice.acme.example"})
    account_id, password, domain = phone["account_id"], phone["password"], phone["domain"]
    assert domain == "voice.acme.example"

    # The order completes once both hold the account: the phone registers at once.
    assert await _registers(sip, phone)
    assert not await _registers(sip, phone, password + "x")
    assert not await sip.kamailio.registers("other.example", account_id, password)

    # The table holds digests only, in Kamailio's layout.
    [row] = await sip.registrar.subscribers(account_id)
    assert row == {
        "domain": domain,
        "password": "",
        "ha1": ha1(account_id, domain, password),
        "ha1b": ha1b(account_id, domain, password),
    }
    order_history = await sip.stack.temporal.get_workflow_handle(f"order-{phone['order_id']}").fetch_history()
    for text in (order_history.to_json(), sip.kamailio.log_text(), _dump(sip)):
        assert password not in text


async def test_a_signed_up_app_registers_with_the_credentials_of_the_verify_answer(sip: SipStack) -> None:
    credentials = await verified_credentials(sip.stack, random_mobile())
    phone = {key: credentials[key] for key in ("account_id", "password", "domain")}
    assert await _registers(sip, phone)
    assert not await _registers(sip, phone, phone["password"] + "x")


async def test_a_password_change_block_unblock_and_termination_reach_the_registrar(sip: SipStack) -> None:
    phone = await _ordered_phone(sip)
    account_id, old = phone["account_id"], phone["password"]
    assert await _registers(sip, phone)

    new = f"New-Secret-{new_id('pw')}"
    await _patch_account(sip, account_id, {"password": new})
    await eventually(lambda: _registers(sip, phone, new), what="the new password accepted")
    assert not await _registers(sip, phone, old)
    # ... and the phone gets it from the CMMS.
    device = await sip.stack.sim.http.post("/device/v1/provision", json={"imei": phone["imei"]})
    assert device.json()["password"] == new

    await _patch_account(sip, account_id, {"blocked": True})
    await eventually(lambda: _refused(sip, phone, new), what="a blocked account refused")
    assert await sip.registrar.subscribers(account_id) == []

    await _patch_account(sip, account_id, {"blocked": False})
    await eventually(lambda: _registers(sip, phone, new), what="an unblocked account accepted")

    history = await sip.stack.temporal.get_workflow_handle(f"account-{account_id}").fetch_history()
    for text in (history.to_json(), sip.kamailio.log_text(), _dump(sip)):
        assert old not in text and new not in text

    terminated = await sip.stack.api.delete(f"/v1/accounts/{account_id}", headers=sip.stack.admin)
    assert terminated.status_code == 202, terminated.text
    await eventually(lambda: _refused(sip, phone, new), what="a terminated account refused")
    assert await sip.registrar.subscribers(account_id) == []


async def test_a_domain_change_moves_the_subscriber(sip: SipStack) -> None:
    phone = await _ordered_phone(sip, custom_fields={"domain": "old.acme.example"})
    assert await _registers(sip, phone)
    async with sip.stack.sessions() as session:
        customer_id = (await session.get_one(Account, phone["account_id"])).customer_id

    changed = await sip.stack.api.patch(
        f"/v1/customers/{customer_id}", json={"custom_fields": {"domain": "new.acme.example"}}, headers=sip.stack.admin
    )
    assert changed.status_code == 202, changed.text
    moved = phone | {"domain": "new.acme.example"}
    await eventually(lambda: _registers(sip, moved), what="the subscriber at the new domain")
    assert not await _registers(sip, phone)
    assert [row["domain"] for row in await sip.registrar.subscribers(phone["account_id"])] == ["new.acme.example"]


async def test_an_unavailable_registrar_is_retried_and_nothing_is_lost(sip: SipStack) -> None:
    stack = sip.stack
    with sip.down():
        body = order_body(await seed_catalog(stack))
        account_id = (await submit(stack, body))["account_id"]

        async def provisioning_state() -> str | None:
            account = await stack.api.get(f"/v1/accounts/{account_id}", headers=stack.admin)
            return str(account.json()["provisioning_state"]) if account.status_code == 200 else None

        await eventually(provisioning_state, lambda state: state == "retry", what="the push retrying")
        order = (await stack.api.get(f"/v1/orders/{body['order_id']}", headers=stack.website)).json()
        assert order["status"] != "completed"
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed", order
    device = await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})
    assert await _registers(sip, device.json())


async def _refused(sip: SipStack, phone: dict[str, Any], password: str) -> bool:
    return not await _registers(sip, phone, password)


def _dump(sip: SipStack) -> str:
    """Every value the registrar's tables hold, as text."""
    return repr(sip.execute("SELECT * FROM subscriber"))
