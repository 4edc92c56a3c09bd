"""The PortaBilling simulator, a real process: its JSON API and status API as docs/portabilling.md
describes them, and the ESPF events each admin change emits, delivered to a real receiver on a real port."""

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from contracts.portabilling import EventType
from tests.support.net import free_port
from tests.support.portabilling import (
    ESPF_PASSWORD,
    ESPF_USERNAME,
    LOGIN,
    PASSWORD,
    EventReceiver,
    PortaBillingAdmin,
    running_event_receiver,
    running_portabilling_sim,
)
from tests.support.stack import serving

_serial = itertools.count(1)


def new_id() -> str:
    return f"4930{next(_serial):07d}"


async def a_customer_and_product(admin: PortaBillingAdmin) -> tuple[int, int]:
    return await admin.add_customer(custom_fields={"profileName": "Business"}), await admin.add_product()


async def rest(url: str, method: str, params: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        return await http.post(f"/rest/{method}", json={"params": params}, headers=headers)


async def login(url: str) -> str:
    response = await rest(url, "Session/login", {"login": LOGIN, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# --- ESPF events ---


async def test_a_new_account_emits_its_events_delivered_with_the_espf_credentials(
    admin: PortaBillingAdmin, receiver: EventReceiver
) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    created = await admin.add_account(new_id(), i_customer, i_product)
    i_account = created["i_account"]
    assert [e["event_type"] for e in created["events"]] == [EventType.ACCOUNT_NEW, EventType.SUBSCRIBER_CREATED]
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 2)
    await receiver.wait_for(lambda: len(receiver.about(i_customer=i_customer)) == 1)

    got = receiver.about(i_account=i_account)
    assert {r.event_type for r in got} == {EventType.ACCOUNT_NEW, EventType.SUBSCRIBER_CREATED}
    assert receiver.about(i_customer=i_customer)[0].event_type == EventType.CUSTOMER_CREATED
    for received in [*got, *receiver.about(i_customer=i_customer)]:
        assert received.credentials == (ESPF_USERNAME, ESPF_PASSWORD)
        assert received.content_type.startswith("application/json")
        assert abs((parsedate_to_datetime(received.date) - datetime.now(UTC)).total_seconds()) < 60
        assert all(isinstance(value, str) for value in received.variables.values())
        assert set(received.variables) in ({"i_event", "i_account"}, {"i_event", "i_customer"})
    # i_event: increasing integers, in creation order.
    events = await admin.events(i_account=i_account)
    assert [e["i_event"] for e in events] == [e["i_event"] for e in created["events"]]
    assert events[0]["i_event"] < events[1]["i_event"]
    assert int(receiver.about(i_customer=i_customer)[0].variables["i_event"]) < events[0]["i_event"]
    assert {int(r.variables["i_event"]) for r in got} == {e["i_event"] for e in events}
    delivered = await admin.delivered(i_account=i_account)
    assert all(e["state"] == "delivered" and e["deliveries"] == 1 and e["last_status"] == 200 for e in delivered)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"service_password": "a-new-sip-password"},
            [EventType.ACCOUNT_SERVICE_PASSWORD_CHANGED, "Subscriber/Updated"],
        ),
        ({"web_password": "a-new-web-password"}, [EventType.ACCOUNT_PASSWORD_CHANGED]),
        ({"id": "renamed"}, [EventType.ACCOUNT_ID_CHANGED]),
        ({"blocked": True}, [EventType.ACCOUNT_BLOCKED]),
        ({"imei": "356938035643809"}, [EventType.ACCOUNT_CUSTOM_FIELD_CHANGED]),
        ({"expiration_date": "2031-01-31"}, [EventType.ACCOUNT_EXPIRATION_DATE_CHANGED]),
        ({"closed": True}, [EventType.ACCOUNT_CLOSED, EventType.SUBSCRIBER_DELETED]),
        ({"inactive": False}, [EventType.SUBSCRIBER_UPDATED]),
        # Several at once: each its own, the subscriber update once.
        (
            {"blocked": True, "service_password": "another-one", "inactive": False},
            [
                EventType.ACCOUNT_SERVICE_PASSWORD_CHANGED,
                EventType.SUBSCRIBER_UPDATED,
                EventType.ACCOUNT_BLOCKED,
            ],
        ),
        # The values it has already: no change, no event.
        ({"blocked": False, "imei": "356938035643801", "closed": False}, []),
    ],
)
async def test_each_account_change_emits_its_events(
    admin: PortaBillingAdmin, receiver: EventReceiver, changes: dict[str, Any], expected: list[str]
) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product, imei="356938035643801", inactive=True))[
        "i_account"
    ]
    if "id" in changes:
        changes = {"id": new_id()}
    changed = await admin.change_account(i_account, **changes)
    assert [e["event_type"] for e in changed["events"]] == expected
    assert "service_password" not in changed  # only the creation and the admin's GET show it
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 2 + len(expected))
    assert Counter(r.event_type for r in receiver.about(i_account=i_account)[2:]) == Counter(expected)


async def test_unblocking_a_product_change_and_a_closed_account(admin: PortaBillingAdmin) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    other = await admin.add_product("Other", messaging_push_events=False)
    i_account = (await admin.add_account(new_id(), i_customer, i_product, blocked=True))["i_account"]
    unblocked = await admin.change_account(i_account, blocked=False, i_product=other)
    assert [e["event_type"] for e in unblocked["events"]] == [
        EventType.ACCOUNT_UNBLOCKED,
        EventType.ACCOUNT_PRODUCT_CHANGED,
    ]
    with pytest.raises(httpx.HTTPStatusError) as unknown_product:
        await admin.change_account(i_account, i_product=999_999)
    assert unknown_product.value.response.status_code == 422
    await admin.change_account(i_account, closed=True)
    with pytest.raises(httpx.HTTPStatusError) as closed:
        await admin.change_account(i_account, blocked=True)
    assert closed.value.response.status_code == 409
    record = await admin.account(i_account)
    assert record["bill_status"] == "C" and record["i_product"] == other


async def test_a_product_edit_emits_nothing(admin: PortaBillingAdmin) -> None:
    before = len(await admin.events())
    i_product = await admin.add_product(messaging_push_events=False)
    changed = await admin.change_product(i_product, messaging_push_events=True)
    assert changed["messaging_push_events"] is True
    assert len(await admin.events()) == before


async def test_customer_changes_and_deletion(admin: PortaBillingAdmin, receiver: EventReceiver, sim_url: str) -> None:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business", "domain": "acme.example"})
    changed = await admin.change_customer(i_customer, custom_fields={"profileName": "Residential", "domain": None})
    assert [e["event_type"] for e in changed["events"]] == [
        EventType.CUSTOMER_CUSTOM_FIELD_CHANGED,
        EventType.CUSTOMER_UPDATED,
    ]
    assert changed["custom_fields"] == {"profileName": "Residential"}
    token = await login(sim_url)
    fields = await rest(sim_url, "Customer/get_custom_fields_values", {"i_customer": i_customer}, token)
    assert fields.json() == {
        "custom_fields_values": [
            {"name": "profileName", "db_value": "Residential"},
            {"name": "domain", "db_value": None},
        ]
    }
    same = await admin.change_customer(i_customer, custom_fields={"profileName": "Residential"})
    assert same["events"] == []

    i_account = (await admin.add_account(new_id(), i_customer, await admin.add_product()))["i_account"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await admin.delete_customer(i_customer)
    assert refused.value.response.status_code == 409
    await admin.change_account(i_account, closed=True)
    await admin.delete_customer(i_customer)
    await receiver.wait_for(
        lambda: [r.event_type for r in receiver.about(i_customer=i_customer)][-1:] == [EventType.CUSTOMER_DELETED]
    )
    assert (await rest(sim_url, "Customer/get_customer_info", {"i_customer": i_customer}, token)).json() == {}


async def test_a_customers_block_and_suspension_emit_their_events(admin: PortaBillingAdmin, sim_url: str) -> None:
    i_customer = await admin.add_customer("Acme")
    steps = [({"blocked": True}, "Customer/Blocked"), ({"blocked": False}, "Customer/Unblocked")]
    steps += [
        ({"suspended": True}, "Customer/Status/Suspended"),
        ({"suspended": False}, "Customer/Status/SuspensionRemoved"),
    ]
    token = await login(sim_url)
    for change, event_type in steps:
        changed = await admin.change_customer(i_customer, **change)
        assert [e["event_type"] for e in changed["events"]] == [event_type, EventType.CUSTOMER_UPDATED]
        info = (await rest(sim_url, "Customer/get_customer_info", {"i_customer": i_customer}, token)).json()
        assert (info["customer_info"]["blocked"], info["customer_info"]["bill_status"]) == (
            "Y" if changed["blocked"] else "N",
            "S" if changed["suspended"] else "O",
        )


async def test_units_lapsing_with_none_left_emit_quota_exceeded(
    admin: PortaBillingAdmin, receiver: EventReceiver, sim_url: str
) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product))["i_account"]
    async with httpx.AsyncClient(base_url=sim_url, timeout=5) as http:
        body = {"service": "messaging", "units": 2, "valid_seconds": 0.5}
        (await http.post(f"/_sim/accounts/{i_account}/topups", json=body)).raise_for_status()
    await receiver.wait_for(
        lambda: (
            [r.event_type for r in receiver.about(i_account=i_account)][-1:] == [EventType.ACCOUNT_MSG_QUOTA_EXCEEDED]
        )
    )
    token = await login(sim_url)
    wallets = await rest(sim_url, "Account/get_service_wallet_list", {"i_account": i_account}, token)
    assert wallets.status_code == 404  # no public source shows such a method


async def test_top_ups_and_charges_spend_the_soonest_lapsing_units_first(admin: PortaBillingAdmin) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product, messaging_units=5))["i_account"]
    topped = await admin.top_up(i_account, 3, valid_days=30)
    assert [e["event_type"] for e in topped["events"]] == [EventType.ACCOUNT_FUNDS_APPEAR]
    spent = await admin.charge(i_account, 4)
    assert spent["events"] == []
    # The 3 lapsing in 30 days went first, then 1 of the 5 that never lapse.
    assert [w["balance"] for w in spent["wallets"]] == [4, 0]
    with pytest.raises(httpx.HTTPStatusError) as short:
        await admin.charge(i_account, 5)
    assert short.value.response.status_code == 409
    dry = await admin.charge(i_account, 4)
    assert [e["event_type"] for e in dry["events"]] == [EventType.ACCOUNT_MSG_QUOTA_EXCEEDED]


async def test_a_refused_delivery_is_retried_until_answered_200(
    admin: PortaBillingAdmin, receiver: EventReceiver
) -> None:
    receiver.fail_next(2, status=500)
    i_customer = await admin.add_customer()
    await receiver.wait_for(lambda: [r.answered for r in receiver.about(i_customer=i_customer)] == [500, 500, 200])
    [event] = await admin.delivered(i_customer=i_customer)
    assert (event["attempts"], event["deliveries"], event["last_status"]) == (3, 1, 200)


async def test_held_quota_events_coalesce_to_the_latest(admin: PortaBillingAdmin, receiver: EventReceiver) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product))["i_account"]
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 2)
    await admin.hold()
    quota_events = []
    for _ in range(3):
        await admin.top_up(i_account, 2)
        dry = await admin.charge(i_account, 2)
        quota_events += [e["i_event"] for e in dry["events"]]
    assert len(quota_events) == 3
    assert await admin.release() == 4  # three top-ups, the latest quota event
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 6)
    got = [r.event_type for r in receiver.about(i_account=i_account)[2:]]
    assert Counter(got) == {EventType.ACCOUNT_FUNDS_APPEAR: 3, EventType.ACCOUNT_MSG_QUOTA_EXCEEDED: 1}
    quota = [r for r in receiver.about(i_account=i_account) if r.event_type == EventType.ACCOUNT_MSG_QUOTA_EXCEEDED]
    assert quota[0].variables["i_event"] == str(quota_events[-1])
    by_id = {e["i_event"]: e for e in await admin.events(i_account=i_account)}
    assert [by_id[i]["state"] for i in quota_events] == ["coalesced", "coalesced", "delivered"]
    assert [by_id[i]["coalesced_into"] for i in quota_events] == [*quota_events[1:], None]


async def test_held_events_released_in_reverse_arrive_newest_first(
    admin: PortaBillingAdmin, receiver: EventReceiver
) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product))["i_account"]
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 2)
    await admin.hold()
    await admin.change_account(i_account, blocked=True)
    await admin.change_account(i_account, imei="356938035643809")
    await admin.change_account(i_account, blocked=False)
    assert len(receiver.about(i_account=i_account)) == 2  # nothing goes while held
    assert await admin.release("reverse") == 3
    await receiver.wait_for(lambda: len(receiver.about(i_account=i_account)) == 5)
    arrived = [r.event_type for r in receiver.about(i_account=i_account)[2:]]
    assert arrived == [EventType.ACCOUNT_UNBLOCKED, EventType.ACCOUNT_CUSTOM_FIELD_CHANGED, EventType.ACCOUNT_BLOCKED]


async def test_a_delivered_event_can_be_sent_again(admin: PortaBillingAdmin, receiver: EventReceiver) -> None:
    i_customer = await admin.add_customer()
    [event] = await admin.delivered(i_customer=i_customer)
    await admin.redeliver(event["i_event"])
    await receiver.wait_for(lambda: len(receiver.about(i_customer=i_customer)) == 2)
    first, again = receiver.about(i_customer=i_customer)
    assert (first.event_type, first.variables) == (again.event_type, again.variables)
    [after] = await admin.delivered(i_customer=i_customer)
    assert after["deliveries"] == 2
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        await admin.redeliver(10**9)
    assert unknown.value.response.status_code == 404
    await admin.hold()
    queued = await admin.add_customer()
    [waiting] = await admin.events(i_customer=queued)
    with pytest.raises(httpx.HTTPStatusError) as not_yet:
        await admin.redeliver(waiting["i_event"])
    assert not_yet.value.response.status_code == 409


async def test_every_nth_event_is_delivered_twice_on_purpose() -> None:
    async with (
        running_event_receiver() as receiver,
        running_portabilling_sim(receiver.url, PORTABILLING_SIM_REPEAT_EVERY="2") as url,
    ):
        admin = PortaBillingAdmin(url)
        i_customer = await admin.add_customer()  # the 1st event
        await admin.change_customer(i_customer, custom_fields={"domain": "a.example"})  # 2nd and 3rd
        await admin.change_customer(i_customer, name="Renamed")  # 4th
        await receiver.wait_for(lambda: len(receiver.received) == 6)
        first = min(int(r.variables["i_event"]) for r in receiver.received)
        counts = Counter(int(r.variables["i_event"]) - first + 1 for r in receiver.received)
        assert counts == {1: 1, 2: 2, 3: 1, 4: 2}
        events = await admin.delivered(i_customer=i_customer)
        assert [e["deliveries"] for e in events] == [1, 2, 1, 2]


async def test_events_wait_for_a_receiver_that_is_not_there_yet() -> None:
    port = free_port()
    receiver = EventReceiver(url=f"http://127.0.0.1:{port}/events")
    async with running_portabilling_sim(receiver.url, PORTABILLING_SIM_REPEAT_EVERY="0") as url:
        admin = PortaBillingAdmin(url)
        i_customer = await admin.add_customer()
        for _ in range(100):
            [event] = await admin.events(i_customer=i_customer)
            if event["attempts"] >= 2:
                break
            await asyncio.sleep(0.05)
        assert event["state"] == "queued" and event["last_status"] is None and event["last_error"] == "ConnectError"
        async with serving(receiver.app(), port, lifespan="off"):
            await receiver.wait_for(lambda: len(receiver.received) == 1, within=15)
        [event] = await admin.events(i_customer=i_customer)
        assert event["state"] == "delivered" and event["attempts"] >= 3


# --- the JSON API ---


async def test_login_and_session_faults_are_answered_as_portabilling_does(sim_url: str) -> None:
    refused = await rest(sim_url, "Session/login", {"login": LOGIN, "password": "not-the-password"})
    assert refused.status_code == 500
    assert refused.json() == {"faultcode": "Server.Session.auth_failed", "faultstring": "Invalid login or password"}
    answer = (await rest(sim_url, "Session/login", {"login": LOGIN, "password": PASSWORD})).json()
    assert set(answer) == {"access_token", "session_id", "refresh_token", "expires_at"}
    expires = datetime.fromisoformat(answer["expires_at"])
    assert expires.tzinfo is not None and 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600
    for token in (None, "not-a-token"):
        denied = await rest(sim_url, "Account/get_account_info", {"i_account": 1}, token)
        assert denied.status_code == 500
        assert denied.json()["faultcode"] == "Server.Session.check_auth.auth_failed"


async def test_unknown_entities_answer_empty_and_malformed_params_are_client_faults(sim_url: str) -> None:
    token = await login(sim_url)
    for method, params in [
        ("Account/get_account_info", {"i_account": 999_999_999}),
        ("Customer/get_customer_info", {"i_customer": 999_999_999}),
        ("Product/get_product_info", {"i_product": 999_999_999}),
    ]:
        answer = await rest(sim_url, method, params, token)
        assert (answer.status_code, answer.json()) == (200, {})
    fields = await rest(sim_url, "Account/get_custom_fields_values", {"i_account": 999_999_999}, token)
    assert fields.json() == {"custom_fields_values": []}
    for malformed in ({}, {"i_account": "abc"}):
        fault = await rest(sim_url, "Account/get_account_info", malformed, token)
        assert fault.status_code == 500 and fault.json()["faultcode"] == "Client.validation"
    paging = await rest(sim_url, "Account/get_account_list", {"i_customer": 1, "offset": -1, "limit": 10}, token)
    assert paging.json()["faultcode"] == "Client.validation"
    unknown = await rest(sim_url, "Account/no_such_method", {}, token)
    assert unknown.status_code == 404


async def test_the_account_as_the_json_api_shows_it(admin: PortaBillingAdmin, sim_url: str) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    created = await admin.add_account(new_id(), i_customer, i_product, imei="356938035643809", blocked=True)
    token = await login(sim_url)
    info = (await rest(sim_url, "Account/get_account_info", {"i_account": created["i_account"]}, token)).json()
    assert info == {
        "account_info": {
            "i_account": created["i_account"],
            "id": created["id"],
            "i_customer": i_customer,
            "i_product": i_product,
            "blocked": "Y",
            "bill_status": "O",
            "h323_password": created["service_password"],
            "expiration_date": None,
        }
    }
    fields = await rest(sim_url, "Account/get_custom_fields_values", {"i_account": created["i_account"]}, token)
    assert fields.json() == {"custom_fields_values": [{"name": "IMEI", "db_value": "356938035643809"}]}


async def test_the_api_down_answers_503(admin: PortaBillingAdmin, sim_url: str) -> None:
    await admin.faults(api="down")
    down = await rest(sim_url, "Session/login", {"login": LOGIN, "password": PASSWORD})
    assert down.status_code == 503 and down.headers["retry-after"] == "1"
    await admin.faults(api="ok")
    assert (await rest(sim_url, "Session/login", {"login": LOGIN, "password": PASSWORD})).status_code == 200


# --- the status API ---


async def test_the_status_api_records_valid_reports_and_refuses_the_rest(
    admin: PortaBillingAdmin, sim_url: str
) -> None:
    i_customer, i_product = await a_customer_and_product(admin)
    i_account = (await admin.add_account(new_id(), i_customer, i_product))["i_account"]
    token = await login(sim_url)

    async def post(body: Any, *, to: int = i_account, bearer: str | None = token) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with httpx.AsyncClient(base_url=sim_url, timeout=5) as http:
            return await http.post(f"/espf/v1/account/i/{to}/status", json=body, headers=headers)

    ok = {"status": "OK", "group": "VoIP", "message": "provisioned"}
    assert (await post(ok)).status_code == 200
    assert (await post(ok)).json() == {}
    assert (await post(ok, bearer=None)).status_code == 401
    assert (await post(ok, bearer="stale")).status_code == 401
    assert (await post(ok, to=999_999_999)).status_code == 404
    for bad in (ok | {"status": "DONE"}, ok | {"message": "x" * 4001}, {"status": "OK", "message": "m"}):
        refused = await post(bad)
        assert refused.status_code == 400 and refused.json()["faultstring"]
    await admin.faults(status_api="down")
    assert (await post(ok)).status_code == 503
    recorded = await admin.statuses(i_account)
    assert [(s["status"], s["group"], s["message"]) for s in recorded] == [("OK", "VoIP", "provisioned")] * 2
    assert datetime.fromisoformat(recorded[0]["at"]) <= datetime.fromisoformat(recorded[1]["at"])
