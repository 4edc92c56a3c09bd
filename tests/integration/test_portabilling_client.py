"""The PortaBilling client against the PortaBilling simulator, a real process on a real port: what it
reads, how it shares and renews its session, how each failure is classified, and that no error or log
line ever shows the API password, a session token or a SIP password."""

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import date

import httpx
import pytest

from clients.portabilling.client import (
    PortaBillingClient,
    PortaBillingError,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
)
from contracts.portabilling import AttributePath
from tests.support.net import free_port
from tests.support.portabilling import (
    LOGIN,
    PASSWORD,
    EventReceiver,
    PortaBillingAdmin,
    portabilling_client,
    running_portabilling_sim,
)

_serial = itertools.count(1)


def new_id() -> str:
    return f"4940{next(_serial):07d}"


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[PortaBillingClient]:
    async with portabilling_client(sim_url) as client:
        yield client


async def an_account(admin: PortaBillingAdmin, **fields: object) -> dict[str, object]:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business", "domain": "acme.example"})
    return await admin.add_account(new_id(), i_customer, await admin.add_product(), **fields)


async def logins(admin: PortaBillingAdmin) -> int:
    count: int = (await admin.stats())["logins"]
    return count


# --- what it reads ---


async def test_it_reads_accounts_customers_products_and_custom_fields(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business", "domain": "acme.example"})
    i_product = await admin.add_product("Softphone", messaging_push_events=True)
    created = await admin.add_account(
        new_id(), i_customer, i_product, imei="356938035643809", blocked=True, expiration_date="2031-01-31"
    )
    i_account = int(str(created["i_account"]))

    account = await client.account(i_account)
    assert account is not None
    assert (account.id, account.i_customer, account.i_product) == (created["id"], i_customer, i_product)
    assert (account.blocked, account.closed, account.inactive) == (True, False, False)
    assert account.service_password is not None
    assert account.service_password.get_secret_value() == created["service_password"]
    assert account.expiration_date == date(2031, 1, 31)
    assert await client.account_custom_fields(i_account) == {"IMEI": "356938035643809"}

    customer = await client.customer(i_customer)
    assert customer is not None and (customer.name, customer.blocked) == ("Acme", False)
    assert await client.customer_custom_fields(i_customer) == {"profileName": "Business", "domain": "acme.example"}
    bare = await admin.add_customer("Bare", {})
    assert await client.customer_custom_fields(bare) == {"profileName": None, "domain": None}  # defined, empty
    product = await client.product(i_product)
    assert product is not None and product.name == "Softphone"
    assert AttributePath("service_policies[service=messaging].push_events").flag(product.info) is True

    await admin.change_account(i_account, closed=True, imei=None)
    closed = await client.account(i_account)
    assert closed is not None and closed.closed
    assert await client.account_custom_fields(i_account) == {"IMEI": None}  # the IMEI field holds nothing now


async def test_what_portabilling_does_not_have_is_none(client: PortaBillingClient) -> None:
    assert await client.account(999_999_999) is None
    assert await client.customer(999_999_999) is None
    assert await client.product(999_999_999) is None
    assert await client.account_custom_fields(999_999_999) == {}


async def test_an_inactive_account(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    created = await an_account(admin, inactive=True)
    account = await client.account(int(str(created["i_account"])))
    assert account is not None and account.inactive and not account.closed


async def test_a_customers_accounts_page_by_page_closed_ones_included(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    i_customer, i_product = await admin.add_customer(), await admin.add_product()
    made = [int((await admin.add_account(new_id(), i_customer, i_product))["i_account"]) for _ in range(5)]
    await admin.change_account(made[1], closed=True)
    pages = [await client.customer_accounts(i_customer, offset=offset, limit=2) for offset in (0, 2, 4, 6)]
    assert [page.i_accounts for page in pages] == [made[0:2], made[2:4], made[4:5], []]
    assert {page.total for page in pages} == {5}


# --- the session ---


async def test_fifty_concurrent_calls_log_in_once(admin: PortaBillingAdmin, sim_url: str) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    before = await logins(admin)
    async with portabilling_client(sim_url) as client:
        accounts = await asyncio.gather(*(client.account(i_account) for _ in range(50)))
        assert all(a is not None and a.i_account == i_account for a in accounts)
        await client.product(999_999_999)
    assert await logins(admin) - before == 1


async def test_a_revoked_session_is_renewed_once_for_every_call_refused(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    await client.account(i_account)
    before = await admin.stats()
    await admin.faults(revoke_tokens=True)
    accounts = await asyncio.gather(*(client.account(i_account) for _ in range(50)))
    assert all(a is not None for a in accounts)
    after = await admin.stats()
    assert after["logins"] - before["logins"] == 1
    assert after["refused_tokens"] - before["refused_tokens"] == 50  # each call refused once, none twice


async def test_a_session_is_renewed_before_it_expires(receiver: EventReceiver) -> None:
    # Two-second sessions: renewed a quarter of their life early (a minute early for real ones).
    async with running_portabilling_sim(receiver.url, PORTABILLING_SIM_TOKEN_TTL_SECONDS="2") as url:
        admin = PortaBillingAdmin(url)
        async with portabilling_client(url) as client:
            await client.product(1)
            await client.product(1)
            assert (await admin.stats())["logins"] == 1
            await asyncio.sleep(1.6)
            await client.product(1)
            stats = await admin.stats()
            assert stats["logins"] == 2
            assert stats["refused_tokens"] == 0  # renewed ahead, not after a refusal
            await asyncio.sleep(2.1)  # past the expiry: renewed ahead again
            await client.product(1)
            assert (await admin.stats())["refused_tokens"] == 0


async def test_a_session_refused_right_after_a_login_is_misconfigured(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    await admin.faults(sessions="refused")
    before = await logins(admin)
    with pytest.raises(PortaBillingMisconfigured) as raised:
        await client.account(1)
    assert await logins(admin) - before == 2  # the first login, then the one renewal: refused twice
    assert "refused right after a new login" in str(raised.value)
    await admin.faults(sessions="ok")
    assert await client.account(999_999_999) is None  # and it recovers once PortaBilling does


async def test_a_wrong_password_is_misconfigured_and_tried_once_for_all_calls(
    admin: PortaBillingAdmin, sim_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = (await admin.stats())["refused_logins"]
    async with portabilling_client(sim_url, password="not-the-password-4711") as client:
        results = await asyncio.gather(*(client.account(1) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, PortaBillingMisconfigured) for r in results)
    assert (await admin.stats())["refused_logins"] - before == 1
    message = str(results[0])
    assert "login" in message and "PORTABILLING_PASSWORD" in message and repr(LOGIN) in message
    assert "not-the-password-4711" not in message and "not-the-password-4711" not in caplog.text


async def test_a_wrong_base_url_is_misconfigured(sim_url: str) -> None:
    async with portabilling_client(f"{sim_url}/not-here") as client:
        with pytest.raises(PortaBillingMisconfigured) as raised:
            await client.account(1)
    assert raised.value.status == 404


# --- failures ---


async def test_the_api_down_is_unavailable(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    await admin.faults(api="down")
    with pytest.raises(PortaBillingUnavailable) as raised:
        await client.account(1)
    assert not isinstance(raised.value, PortaBillingMisconfigured)
    assert (raised.value.status, raised.value.retry_after) == (503, 1.0)


async def test_a_slow_api_times_out_as_unavailable(admin: PortaBillingAdmin, sim_url: str) -> None:
    await admin.faults(api="slow", slow_seconds=2)
    async with portabilling_client(sim_url, timeout=0.3) as client:
        with pytest.raises(PortaBillingUnavailable, match="timed out"):
            await client.account(1)


async def test_nothing_listening_is_unavailable() -> None:
    async with portabilling_client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(PortaBillingUnavailable, match="unreachable"):
            await client.customer(1)


async def test_a_client_fault_is_rejected(client: PortaBillingClient) -> None:
    with pytest.raises(PortaBillingRejected) as raised:
        await client.customer_accounts(1, offset=-1, limit=10)
    assert raised.value.status == 500 and raised.value.reason.startswith("Client.validation")


# --- the status API ---


async def test_a_status_is_posted_and_recorded(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    await client.post_status(i_account, "IN_PROGRESS", "pushing to the CMMS", group="VoIP")
    await client.post_status(i_account, "OK", "x" * 5000, group="VoIP")
    recorded = await admin.statuses(i_account)
    assert [(s["status"], s["group"]) for s in recorded] == [("IN_PROGRESS", "VoIP"), ("OK", "VoIP")]
    assert recorded[0]["message"] == "pushing to the CMMS"
    assert recorded[1]["message"] == "x" * 4000  # cut to what PortaBilling takes


async def test_a_status_for_an_unknown_account_is_rejected(client: PortaBillingClient) -> None:
    with pytest.raises(PortaBillingRejected) as raised:
        await client.post_status(999_999_999, "FAILED", "no such account", group="VoIP")
    assert raised.value.status == 404


async def test_a_status_with_a_group_portabilling_refuses_is_rejected(
    admin: PortaBillingAdmin, client: PortaBillingClient
) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    with pytest.raises(PortaBillingRejected) as raised:
        await client.post_status(i_account, "OK", "done", group="")
    assert raised.value.status == 400


async def test_a_status_after_a_revoked_session_renews_it(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    await client.post_status(i_account, "OK", "first", group="VoIP")
    before = await logins(admin)
    await admin.faults(revoke_tokens=True)
    await client.post_status(i_account, "OK", "second", group="VoIP")  # 401, a new login, again
    assert await logins(admin) - before == 1
    assert [s["message"] for s in await admin.statuses(i_account)] == ["first", "second"]


async def test_the_status_api_down_is_unavailable(admin: PortaBillingAdmin, client: PortaBillingClient) -> None:
    i_account = int(str((await an_account(admin))["i_account"]))
    await admin.faults(status_api="down")
    with pytest.raises(PortaBillingUnavailable) as raised:
        await client.post_status(i_account, "OK", "done", group="VoIP")
    assert raised.value.status == 503 and not isinstance(raised.value, PortaBillingMisconfigured)


# --- secrets ---


@dataclass
class Witness(httpx.AsyncBaseTransport):
    """A real HTTP transport that notes every secret crossing it: bearer tokens, login answers' tokens
    and the SIP passwords of account answers."""

    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    secrets: set[str] = field(default_factory=set)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme == "Bearer" and token:
            self.secrets.add(token)
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        for name in ("access_token", "refresh_token", "session_id", "h323_password"):
            self.secrets |= set(_values_of(httpx.Response(200, content=body), name))
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _values_of(response: httpx.Response, name: str) -> list[str]:
    try:
        payload = response.json()
    except ValueError:
        return []
    found: list[str] = []
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found += [str(v) for k, v in item.items() if k == name and v]
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
    return found


async def test_no_error_and_no_log_line_shows_a_password_or_a_token(
    admin: PortaBillingAdmin, sim_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await an_account(admin, service_password="sip-secret-0815")
    i_account = int(str(created["i_account"]))
    witness = Witness()
    errors: list[PortaBillingError] = []

    async def provoke(call: Awaitable[object]) -> None:
        try:
            await call
        except PortaBillingError as err:
            errors.append(err)

    async with PortaBillingClient(sim_url, LOGIN, PASSWORD, timeout=0.3, transport=witness) as client:
        account = await client.account(i_account)  # a session, and a SIP password, crossed the wire
        assert account is not None and "sip-secret-0815" not in repr(account)
        await admin.faults(revoke_tokens=True)
        await client.account(i_account)  # a second token
        await admin.faults(sessions="refused")
        await provoke(client.account(i_account))
        await admin.faults(sessions="ok", api="down")
        await provoke(client.account(i_account))
        await admin.faults(api="slow", slow_seconds=1)
        await provoke(client.account(i_account))
        await admin.faults(api="ok", status_api="down")
        await provoke(client.post_status(i_account, "OK", "done", group="VoIP"))
        await admin.faults(status_api="ok")
        await provoke(client.post_status(999_999_999, "OK", "done", group="VoIP"))
        await provoke(client.post_status(i_account, "OK", "done", group=""))
        await provoke(client.customer_accounts(1, offset=-1, limit=1))
    async with PortaBillingClient(sim_url, LOGIN, "a-wrong-api-password", transport=Witness()) as wrong:
        await provoke(wrong.account(i_account))
    async with PortaBillingClient(f"http://127.0.0.1:{free_port()}", LOGIN, PASSWORD) as nowhere:
        await provoke(nowhere.account(i_account))

    kinds = {type(err) for err in errors}
    assert kinds == {PortaBillingMisconfigured, PortaBillingUnavailable, PortaBillingRejected}
    assert len(errors) == 9
    secrets = witness.secrets | {PASSWORD, "a-wrong-api-password", "sip-secret-0815"}
    assert len(witness.secrets) >= 4  # two sessions' tokens and the SIP password, at least
    for err in errors:
        text = f"{err} {err!r} {err.args}"
        assert not [s for s in secrets if s in text], text
    assert not [s for s in secrets if s in caplog.text]
