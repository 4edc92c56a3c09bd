"""The PortaBilling client held to PortaBilling as public examples show it, not as the client assumes it:
the wire models read the example answers of `simulators/portabilling/fixtures/` as they are, and the
client, over real HTTP, reads the simulator whose answers are built from those examples (a session
dropped early with each of the faults public clients log in again on, custom field values in
`db_value`, `total` only with `get_total`, any `bill_status` letter, a role that hides
`h323_password`)."""

import itertools
from typing import Any

import httpx
import pytest

from clients.portabilling.client import PortaBillingClient
from contracts.portabilling import (
    AccountInfoAnswer,
    AccountListAnswer,
    AccountState,
    CustomFieldsAnswer,
)
from simulators.portabilling.answers import example, session_faults
from tests.support.portabilling import LOGIN, PASSWORD, PortaBillingAdmin, portabilling_client

_serial = itertools.count(1)


def new_id() -> str:
    return f"4950{next(_serial):07d}"


@pytest.fixture
async def client(sim_url: str) -> Any:
    async with portabilling_client(sim_url) as client:
        yield client


async def an_account(admin: PortaBillingAdmin, **fields: Any) -> int:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business"})
    created = await admin.add_account(new_id(), i_customer, await admin.add_product(), **fields)
    return int(created["i_account"])


async def raw(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A JSON API call as the examples show it, with a fresh session."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        login = await http.post("/rest/Session/login", json={"params": {"login": LOGIN, "password": PASSWORD}})
        token = login.json()["access_token"]
        answer = await http.post(
            f"/rest/{method}", json={"params": params}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = answer.json()
    return payload


# --- the wire models read the public examples as they are ---


def test_custom_field_values_are_read_from_db_value_with_text_value_as_fallback() -> None:
    answer = CustomFieldsAnswer.model_validate(example("custom_fields_values"))
    assert answer.values() == {"Cost Center": "0042", "Department": None}
    fallback = CustomFieldsAnswer.model_validate(
        {"custom_fields_values": [{"name": "IMEI", "text_value": "356938035643809"}, {"name": "Cost", "db_value": 7}]}
    )
    assert fallback.values() == {"IMEI": "356938035643809", "Cost": "7"}


def test_an_account_list_has_a_total_only_when_asked_for_and_takes_any_letter() -> None:
    asked = AccountListAnswer.model_validate(example("account_list", "answer"))
    assert asked.total == 3
    assert [item.state for item in asked.account_list] == [AccountState.open, AccountState.inactive]
    assert AccountListAnswer.model_validate(example("account_list", "answer_without_get_total")).total is None
    later = {"account_list": [{"i_account": 7, "id": "1", "bill_status": "S"}, {"i_account": 8, "id": "2"}]}
    items = AccountListAnswer.model_validate(later).account_list  # one unknown letter breaks no page
    assert [item.state for item in items] == [AccountState.unknown, AccountState.unknown]


def test_account_info_with_and_without_the_password_a_role_may_hide() -> None:
    shown = AccountInfoAnswer.model_validate({"account_info": example("account_info", "account_info")})
    assert shown.account_info is not None
    account = shown.account_info.account()
    assert account.service_password is not None and account.state == AccountState.open
    hidden = AccountInfoAnswer.model_validate(
        {"account_info": example("account_info", "account_info_without_password")}
    )
    assert hidden.account_info is not None and hidden.account_info.account().service_password is None
    letters = example("account_info", "bill_status_letters")
    assert {AccountState.of(letter) for letter in letters} == {
        AccountState.open,
        AccountState.inactive,
        AccountState.closed,
    }


# --- the client against the simulator built from them ---


@pytest.mark.parametrize("faultcode", sorted(session_faults()))
async def test_a_session_dropped_early_is_renewed_and_the_call_repeated_once(
    admin: PortaBillingAdmin, client: PortaBillingClient, faultcode: str
) -> None:
    i_account = await an_account(admin)
    assert await client.account(i_account) is not None
    before = await admin.stats()
    await admin.faults(revoke_tokens=True, session_fault=faultcode)
    account = await client.account(i_account)
    assert account is not None and account.i_account == i_account
    after = await admin.stats()
    assert (after["logins"] - before["logins"], after["refused_tokens"] - before["refused_tokens"]) == (1, 1)


async def test_custom_fields_come_from_db_value(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business"})
    created = await admin.add_account(new_id(), i_customer, await admin.add_product(), imei="356938035643809")
    i_account = int(created["i_account"])
    wire = await raw(admin.base_url, "Account/get_custom_fields_values", {"i_account": i_account})
    assert wire["custom_fields_values"][0]["db_value"] == "356938035643809"  # as the examples spell it
    assert await client.account_custom_fields(i_account) == {"IMEI": "356938035643809"}
    assert await client.customer_custom_fields(i_customer) == {"profileName": "Business", "domain": None}
    await admin.faults(undefined_custom_fields=["IMEI"])
    assert await client.account_custom_fields(i_account) == {}  # not defined: not there at all


async def test_account_lists_ask_for_their_total(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_customer, i_product = await admin.add_customer(), await admin.add_product()
    for _ in range(3):
        await admin.add_account(new_id(), i_customer, i_product)
    without = await raw(admin.base_url, "Account/get_account_list", {"i_customer": i_customer, "limit": 2})
    assert "total" not in without  # PortaBilling answers it only when asked
    page = await client.customer_accounts(i_customer, offset=0, limit=2)
    assert (len(page.i_accounts), page.total) == (2, 3)


async def test_any_bill_status_letter_is_read(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_customer, i_product = await admin.add_customer(), await admin.add_product()
    letters = ["O", "I", "S", "C"]
    made = [
        int((await admin.add_account(new_id(), i_customer, i_product, bill_status=x))["i_account"]) for x in letters
    ]
    states = [(await client.account(i)) for i in made]
    assert [a.state if a else None for a in states] == [
        AccountState.open,
        AccountState.inactive,
        AccountState.unknown,
        AccountState.closed,
    ]
    page = await client.accounts(offset=0, limit=10, i_customer=i_customer)  # an unknown letter breaks no page
    assert [(e.i_account, e.bill_status) for e in page.accounts] == list(zip(made, letters, strict=True))
    assert page.total == 4


async def test_a_role_that_hides_the_service_password_reads_as_no_password(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    i_account = await an_account(admin)
    await admin.faults(hidden_fields=["h323_password"])
    account = await client.account(i_account)
    assert account is not None and account.service_password is None


async def test_an_account_is_found_by_its_id(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_customer, i_product = await admin.add_customer(), await admin.add_product()
    account_id = new_id()
    i_account = int((await admin.add_account(account_id, i_customer, i_product))["i_account"])
    found = await client.account_by_id(account_id)
    assert found is not None and found.i_account == i_account
    assert await client.account_by_id("no-such-id") is None
