"""Beside PortaBilling (`BILLING_SOURCE=portabilling`), end to end on real parts: the PortaBilling
simulator emits ESPF events to the real API, the worker reads PortaBilling's JSON API, pushes to the
CMMS simulator and writes the provisioning status back; on SQLite and on PostgreSQL."""

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from billing.db import snapshot, transaction
from billing.models import PortaBillingEvent
from contracts.cmms import CmmsRecord, password_digest
from services.portabilling_events import forget_old_events
from tests.support.history import all_histories_text
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.portabilling import Beside, new_id, new_imei, running_portabilling_sim
from tests.support.simulator import SimulatorProcess
from tests.support.stack import running_stack, stack_settings

ESPF_USER = "espf-test"
ESPF_PASSWORD = "espf-test-password"
PB_LOGIN = "cmms-sync-test"
PB_PASSWORD = "pb-test-password"
T = TypeVar("T")


@pytest.fixture(scope="module")
async def beside(dev_server: str, billing_database: str, sim: SimulatorProcess) -> AsyncIterator[Beside]:
    api_port = free_port()
    event_url = f"http://127.0.0.1:{api_port}/v1/portabilling/events"
    async with running_portabilling_sim(
        event_url,
        PORTABILLING_LOGIN=PB_LOGIN,
        PORTABILLING_PASSWORD=PB_PASSWORD,
        ESPF_USERNAME=ESPF_USER,
        ESPF_PASSWORD=ESPF_PASSWORD,
        # Account workflows outlive a module's stack on the shared Temporal server: ids of its own.
        PORTABILLING_SIM_ID_OFFSET=str(secrets.randbelow(10**6) * 10**6),
    ) as pb_url:
        settings = stack_settings(
            dev_server,
            billing_database,
            sim,
            api_port=api_port,
            billing_source="portabilling",
            portabilling_url=pb_url,
            portabilling_login=PB_LOGIN,
            portabilling_password=PB_PASSWORD,
            espf_username=ESPF_USER,
            espf_password=ESPF_PASSWORD,
            worker_metrics_port=free_port(),
        )
        async with running_stack(settings, sim) as stack, httpx.AsyncClient(base_url=pb_url, timeout=10) as pb:
            yield Beside(stack, pb)


async def record_of(sim: SimulatorProcess, account_id: str, accept: Callable[[CmmsRecord | None], bool]) -> Any:
    return await eventually(lambda: sim.get_record(account_id), accept)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_an_account_created_in_portabilling_reaches_the_cmms_and_the_device(beside: Beside) -> None:
    imei = new_imei()
    i_account, account_id, password = await beside.new_account(imei)
    record = await record_of(beside.stack.sim, account_id, lambda r: r is not None)
    assert (record.imei, record.profile, record.blocked) == (imei, "Business", False)
    assert record.password_digest == password_digest(account_id, password)
    device = await beside.stack.sim.http.post("/device/v1/provision", json={"imei": imei})
    assert device.status_code == 200
    assert (device.json()["account_id"], device.json()["password"]) == (account_id, password)
    statuses = await eventually(lambda: beside.statuses(i_account), lambda s: any(x["status"] == "OK" for x in s))
    assert statuses[-1]["group"] == "VoIP"
    assert password not in str(statuses)
    # The account's workflow carried ids only: no SIP password, nor PortaBilling's or ESPF's credentials.
    history = await eventually(
        lambda: all_histories_text(beside.stack.temporal, f'WorkflowId = "account-pb-{i_account}"'),
        lambda text: f"pb-{i_account}" in text and "provision_account" in text,
    )
    for secret in (password, PB_PASSWORD, ESPF_PASSWORD):
        assert secret not in history


async def test_password_block_and_closure_reach_the_cmms(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None)
    await beside.change(f"accounts/{i_account}", service_password="A-new-Password-0123456789")
    await record_of(
        sim,
        account_id,
        lambda r: r is not None and r.password_digest == password_digest(account_id, "A-new-Password-0123456789"),
    )
    await beside.change(f"accounts/{i_account}", blocked=True)
    await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    await beside.change(f"accounts/{i_account}", blocked=False)
    await record_of(sim, account_id, lambda r: r is not None and not r.blocked)
    await beside.change(f"accounts/{i_account}", closed=True)
    await record_of(sim, account_id, lambda r: r is None)


async def test_an_id_change_moves_the_cmms_record(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, old_id, _ = await beside.new_account(new_imei())
    await record_of(sim, old_id, lambda r: r is not None)
    new = new_id()
    await beside.change(f"accounts/{i_account}", id=new)
    await record_of(sim, new, lambda r: r is not None)
    await record_of(sim, old_id, lambda r: r is None)


async def test_a_customer_profile_change_reaches_every_account(beside: Beside) -> None:
    sim = beside.stack.sim
    product = await beside.create("products", name="Mobile", messaging_push_events=False)
    customer = await beside.create("customers", name="Two lines", custom_fields={"profileName": "Residential"})
    ids = []
    for _ in range(3):
        account = await beside.create(
            "accounts",
            id=new_id(),
            i_customer=customer["i_customer"],
            i_product=product["i_product"],
        )
        ids.append(account["id"])
    for account_id in ids:
        await record_of(sim, account_id, lambda r: r is not None and r.profile == "Residential")
    await beside.change(f"customers/{customer['i_customer']}", custom_fields={"profileName": "Business"})
    for account_id in ids:
        await record_of(sim, account_id, lambda r: r is not None and r.profile == "Business")
    # The customer's rollout walked PortaBilling's list of its accounts, and counted them.
    rollout = beside.stack.temporal.get_workflow_handle(f"rollout-pb-{customer['i_customer']}")
    progress = await eventually(lambda: rollout.query("progress"), lambda p: p["status"] == "completed")
    assert (progress["total"], progress["done"], progress["failed"]) == (3, 3, 0)


async def test_a_messaging_wallet_running_dry_and_a_top_up_reach_the_cmms_with_the_policy_on(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei(), push=True, messaging_units=2)
    await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)
    response = await beside.pb.post(f"/_sim/accounts/{i_account}/charges", json={"service": "messaging", "units": 2})
    assert response.status_code == 200, response.text
    await record_of(sim, account_id, lambda r: r is not None and not r.messaging_enabled)
    response = await beside.pb.post(
        f"/_sim/accounts/{i_account}/topups", json={"service": "messaging", "units": 5, "valid_days": 30}
    )
    assert response.status_code in (200, 201), response.text
    await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)


async def test_with_the_policy_off_a_dry_wallet_leaves_messaging_to_the_cmms(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei(), push=False, messaging_units=1)
    first = await record_of(sim, account_id, lambda r: r is not None)
    assert first.messaging_enabled
    response = await beside.pb.post(f"/_sim/accounts/{i_account}/charges", json={"service": "messaging", "units": 1})
    assert response.status_code == 200, response.text
    await beside.change(f"accounts/{i_account}", blocked=True)  # a later change, pushed after the charge's event
    record = await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    assert record.messaging_enabled


async def test_events_out_of_order_end_at_portabillings_current_state(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None)
    (await beside.pb.post("/_sim/events/hold")).raise_for_status()
    try:
        await beside.change(f"accounts/{i_account}", blocked=True)
        await beside.change(f"accounts/{i_account}", service_password="Latest-Password-0123456789")
        await beside.change(f"accounts/{i_account}", blocked=False)
    finally:
        (await beside.pb.post("/_sim/events/release", json={"order": "reverse"})).raise_for_status()
    digest = password_digest(account_id, "Latest-Password-0123456789")
    # A push under way meanwhile (the creation's customer and product events, a repeated delivery) may
    # have read PortaBilling between the held changes: the end state is what must match.
    await record_of(sim, account_id, lambda r: r is not None and r.password_digest == digest and not r.blocked)


async def test_a_repeated_event_is_processed_once(beside: Beside) -> None:
    api = beside.stack.api
    headers = basic(ESPF_USER, ESPF_PASSWORD)
    event = {"event_type": "Account/Blocked", "variables": {"i_event": "900000001", "i_account": "990001"}}
    first = await api.post("/v1/portabilling/events", json=event, headers=headers)
    again = await api.post("/v1/portabilling/events", json=event, headers=headers)
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "repeat")
    # Many deliveries of one event at once: stored once, every one answered 200.
    event = {"event_type": "Account/Unblocked", "variables": {"i_event": "900000002", "i_account": "990001"}}
    answers = await asyncio.gather(
        *(api.post("/v1/portabilling/events", json=event, headers=headers) for _ in range(10))
    )
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["status"] for a in answers).count("accepted") == 1


async def test_unknown_event_types_are_answered_200_and_read_again(beside: Beside) -> None:
    api = beside.stack.api
    headers = basic(ESPF_USER, ESPF_PASSWORD)
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None)
    # Behind the events' back (held), then an event of a type from a later release: it reads the account again.
    (await beside.pb.post("/_sim/events/hold")).raise_for_status()
    await beside.change(f"accounts/{i_account}", blocked=True)
    renamed = {
        "event_type": "Account/Renamed/In/A/Later/Release",
        "variables": {"i_event": "900000010", "i_account": str(i_account)},
    }
    answer = await api.post("/v1/portabilling/events", json=renamed, headers=headers)
    assert (answer.status_code, answer.json()["status"]) == (200, "accepted")
    await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    (await beside.pb.post("/_sim/events/release", json={"order": "fifo"})).raise_for_status()
    invoice = {"event_type": "Invoice/Created", "variables": {"i_event": "900000011", "i_invoice": "77"}}
    answer = await api.post("/v1/portabilling/events", json=invoice, headers=headers)
    assert (answer.status_code, answer.json()["status"]) == (200, "ignored")
    metrics = (await api.get("/metrics")).text
    assert 'portabilling_events_total{known="false",outcome="accepted"}' in metrics


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(ESPF_USER, "wrong"),
        basic("someone", ESPF_PASSWORD),
        {"Authorization": "Bearer test-admin-key"},
        {"Authorization": "Basic not-base64!"},
    ],
    ids=["none", "wrong password", "wrong user", "an API key", "garbage"],
)
async def test_the_receiver_wants_espf_credentials(beside: Beside, headers: dict[str, str]) -> None:
    event = {"event_type": "Account/Blocked", "variables": {"i_event": "900000020", "i_account": "990002"}}
    answer = await beside.stack.api.post("/v1/portabilling/events", json=event, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert ESPF_PASSWORD not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "Account/Blocked", "variables": {"i_account": "1"}},
        {"event_type": "Account/Blocked", "variables": {"i_event": "x", "i_account": "1"}},
        {"event_type": "", "variables": {"i_event": "1"}},
        {"variables": {"i_event": "1"}},
        {"event_type": "Account/Blocked", "variables": {"i_event": "-4"}},
    ],
    ids=["no i_event", "i_event not a number", "empty type", "no type", "negative i_event"],
)
async def test_a_malformed_event_is_refused_and_stores_nothing(beside: Beside, body: dict[str, Any]) -> None:
    answer = await beside.stack.api.post("/v1/portabilling/events", json=body, headers=basic(ESPF_USER, ESPF_PASSWORD))
    assert answer.status_code == 422, answer.text


async def test_status_callbacks_say_retry_while_the_cmms_is_down_then_ok(
    beside: Beside, faulty_sim: SimulatorProcess
) -> None:
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(faulty_sim, account_id, lambda r: r is not None)
    await faulty_sim.set_faults(outage_seconds=60)
    await beside.change(f"accounts/{i_account}", blocked=True)
    retry = await eventually(lambda: beside.statuses(i_account), lambda s: s[-1]["status"] == "RETRY")
    assert "CMMS unavailable" in retry[-1]["message"]
    await faulty_sim.clear_faults()
    await eventually(lambda: beside.statuses(i_account), lambda s: s[-1]["status"] == "OK")
    await record_of(faulty_sim, account_id, lambda r: r is not None and r.blocked)


async def test_status_callback_says_failed_with_the_cmms_refusal(beside: Beside) -> None:
    i_account, _, _ = await beside.new_account(new_imei(), custom_fields={"profileName": "NoSuchProfile"})
    failed = await eventually(lambda: beside.statuses(i_account), lambda s: bool(s) and s[-1]["status"] == "FAILED")
    assert "CMMS rejected" in failed[-1]["message"]


async def test_units_lapsing_suspend_messaging_when_portabilling_says_so(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei(), push=True, messaging_units=1)
    await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)
    await beside.pb.post(f"/_sim/accounts/{i_account}/charges", json={"service": "messaging", "units": 1})
    await record_of(sim, account_id, lambda r: r is not None and not r.messaging_enabled)
    response = await beside.pb.post(
        f"/_sim/accounts/{i_account}/topups", json={"service": "messaging", "units": 5, "valid_seconds": 3}
    )
    assert response.status_code in (200, 201), response.text
    await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)
    # PortaBilling sees the units lapse and says so (Account/Service/Msg/QuotaExceeded): no wallet is read.
    await record_of(sim, account_id, lambda r: r is not None and not r.messaging_enabled)


async def test_messaging_events_out_of_order_end_at_the_latest(beside: Beside) -> None:
    """PortaBilling numbers its events in order: a top-up's event delivered before an older wallet-dry
    event (a retry, a reordering) keeps messaging on."""
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei(), push=True, messaging_units=1)
    await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)
    await beside.pb.post(f"/_sim/accounts/{i_account}/charges", json={"service": "messaging", "units": 1})
    await record_of(sim, account_id, lambda r: r is not None and not r.messaging_enabled)
    emitted = (await beside.pb.get("/_sim/events", params={"i_account": i_account})).json()
    newest = max(e["i_event"] for e in emitted) + 10**9  # beyond what the simulator numbers meanwhile
    headers = basic(ESPF_USER, ESPF_PASSWORD)
    for i_event, event_type in (
        (newest + 2, "Account/AvailableFundsAppear"),
        (newest + 1, "Account/ZeroAvailableFunds"),
    ):
        event = {"event_type": event_type, "variables": {"i_event": str(i_event), "i_account": str(i_account)}}
        answer = await beside.stack.api.post("/v1/portabilling/events", json=event, headers=headers)
        assert answer.json()["status"] == "accepted"
    await beside.change(f"accounts/{i_account}", blocked=True)  # a later push, after both
    record = await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    assert record.messaging_enabled


async def test_no_wallet_is_read_and_an_account_without_a_policy_reaches_the_cmms(beside: Beside) -> None:
    """PortaBilling has no public method for a service wallet, and the simulator serves none: an account
    is pushed all the same, with the policy off and on."""
    sim = beside.stack.sim
    for push in (False, True):
        _, account_id, _ = await beside.new_account(new_imei(), push=push, messaging_units=3)
        await record_of(sim, account_id, lambda r: r is not None and r.messaging_enabled)
    calls = (await beside.pb.get("/_sim/stats")).json()["calls"]
    assert not [name for name in calls if "wallet" in name.lower()]


async def test_a_product_not_showing_its_messaging_policy_is_a_retry_that_says_what_to_set(beside: Beside) -> None:
    """The product answers without the shape PORTABILLING_MESSAGING_POLICY_PATH looks for: no silent
    "not driven", but a RETRY naming the setting, on the account in PortaBilling, alerted on."""
    product = await beside.create(
        "products", name="Elsewhere", messaging_push_events=True, messaging_policy_shown=False
    )
    customer = await beside.create("customers", name="Acme", custom_fields={"profileName": "Business"})
    account = await beside.create(
        "accounts", id=new_id(), i_customer=customer["i_customer"], i_product=product["i_product"]
    )
    statuses = await eventually(
        lambda: beside.statuses(account["i_account"]), lambda s: bool(s) and s[-1]["status"] == "RETRY"
    )
    assert "PORTABILLING_MESSAGING_POLICY_PATH" in statuses[-1]["message"]
    assert await beside.stack.sim.get_record(account["id"]) is None
    metrics = await eventually(lambda: worker_metrics(beside), lambda m: 'kind="misconfigured"' in m)
    assert "business_billing_failures_total{" in metrics


async def test_an_account_past_its_expiration_date_is_blocked(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None and not r.blocked)
    await beside.change(f"accounts/{i_account}", expiration_date=datetime.now(UTC).date().isoformat())
    await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    await beside.change(f"accounts/{i_account}", expiration_date=None)
    await record_of(sim, account_id, lambda r: r is not None and not r.blocked)


async def test_a_portabilling_outage_delays_the_push_and_loses_nothing(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None and not r.blocked)
    (await beside.pb.post("/_sim/faults", json={"api": "down"})).raise_for_status()
    try:
        await beside.change(f"accounts/{i_account}", blocked=True)
        events = await eventually(
            lambda: beside.pb.get("/_sim/events", params={"i_account": i_account}),
            lambda r: all(e["state"] == "delivered" for e in r.json()),
        )
        assert events.json()
        await asyncio.sleep(1.0)  # delivered, and PortaBilling cannot be read: the CMMS keeps the old state
        record = await sim.get_record(account_id)
        assert record is not None and not record.blocked
    finally:
        (await beside.pb.post("/_sim/faults", json={"api": "ok"})).raise_for_status()
    await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    metrics = await worker_metrics(beside)
    assert "business_billing_failures_total{" in metrics and 'kind="outage"' in metrics


async def worker_metrics(beside: Beside) -> str:
    port = beside.stack.settings.worker.metrics_port
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


async def test_an_imei_field_the_cmms_cannot_take_fails_the_push_and_says_why(beside: Beside) -> None:
    i_account, account_id, _ = await beside.new_account("12345")
    failed = await eventually(lambda: beside.statuses(i_account), lambda s: bool(s) and s[-1]["status"] == "FAILED")
    assert "IMEI custom field is not 15 digits" in failed[-1]["message"]
    assert await beside.stack.sim.get_record(account_id) is None
    assert 'kind="refused"' in await worker_metrics(beside)


async def test_the_built_in_billing_refuses_beside_portabilling(beside: Beside) -> None:
    api, stack = beside.stack.api, beside.stack
    order = await api.post("/v1/orders", json={}, headers=stack.website)
    customers = await api.get("/v1/customers", headers=stack.admin)
    # (Reconciliation works beside PortaBilling: tests/integration/test_portabilling_adoption.py, on a
    # CMMS of its own, since it takes every record this PortaBilling lacks for an orphan.)
    assert (order.status_code, customers.status_code) == (409, 409)
    assert "PortaBilling" in order.json()["detail"]
    anonymous = await api.get("/v1/customers")
    assert anonymous.status_code == 401  # who has no key learns nothing of the billing


async def test_events_past_their_retention_are_forgotten(beside: Beside) -> None:
    api, sessions = beside.stack.api, beside.stack.sessions
    headers = basic(ESPF_USER, ESPF_PASSWORD)
    old, recent = 900000100 + secrets.randbelow(10**6), 910000100 + secrets.randbelow(10**6)
    async with transaction(sessions) as session:
        long_ago = datetime.now(UTC) - timedelta(days=8)
        session.add(
            PortaBillingEvent(i_event=old, event_type="Account/Blocked", i_account=990003, received_at=long_ago)
        )
        session.add(PortaBillingEvent(i_event=recent, event_type="Account/Blocked", i_account=990003))
    assert await forget_old_events(sessions, datetime.now(UTC) - timedelta(days=7)) >= 1
    async with snapshot(sessions) as session:
        assert await session.get(PortaBillingEvent, old) is None
        assert await session.get(PortaBillingEvent, recent) is not None
    # A repeat of the recent one is still known as such.
    event = {"event_type": "Account/Blocked", "variables": {"i_event": str(recent), "i_account": "990003"}}
    answer = await api.post("/v1/portabilling/events", json=event, headers=headers)
    assert answer.json()["status"] == "repeat"


async def test_a_refusal_reaches_portabilling_once_its_status_api_is_back(beside: Beside) -> None:
    (await beside.pb.post("/_sim/faults", json={"status_api": "down"})).raise_for_status()
    try:
        i_account, _, _ = await beside.new_account(new_imei(), custom_fields={"profileName": "NoSuchProfile"})
        await asyncio.sleep(2.0)  # refused by the CMMS meanwhile, and the status could not be written
        assert await beside.statuses(i_account) == []
    finally:
        (await beside.pb.post("/_sim/faults", json={"status_api": "ok"})).raise_for_status()
    failed = await eventually(lambda: beside.statuses(i_account), lambda s: bool(s) and s[-1]["status"] == "FAILED")
    assert "CMMS rejected" in failed[-1]["message"]


async def test_an_account_not_yet_active_is_pushed_blocked_until_it_is(beside: Beside) -> None:
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei(), inactive=True)
    await record_of(sim, account_id, lambda r: r is not None and r.blocked)
    await beside.change(f"accounts/{i_account}", inactive=False)
    await record_of(sim, account_id, lambda r: r is not None and not r.blocked)


async def test_a_bill_status_letter_this_release_does_not_know_is_pushed_blocked(
    beside: Beside, caplog: pytest.LogCaptureFixture
) -> None:
    i_account, account_id, _ = await beside.new_account(new_imei(), bill_status="S")
    await record_of(beside.stack.sim, account_id, lambda r: r is not None and r.blocked)
    assert f"PortaBilling account {i_account} has bill_status 'S'" in caplog.text


async def misconfigured_until_healed(beside: Beside, fault: dict[str, Any], *named: str) -> None:
    """With `fault` set, a new account's push waits as a RETRY whose message names what to fix (counted
    `misconfigured`, what operations alert on); once healed, it reaches the CMMS."""
    (await beside.pb.post("/_sim/faults", json=fault)).raise_for_status()
    try:
        i_account, account_id, _ = await beside.new_account(new_imei())
        retry = await eventually(lambda: beside.statuses(i_account), lambda s: bool(s) and s[-1]["status"] == "RETRY")
        for words in named:
            assert words in retry[-1]["message"], retry[-1]["message"]
        assert await beside.stack.sim.get_record(account_id) is None  # no default pushed meanwhile
        assert 'kind="misconfigured"' in await worker_metrics(beside)
    finally:
        healed: dict[str, list[str]] = {name: [] for name in fault}
        (await beside.pb.post("/_sim/faults", json=healed)).raise_for_status()
    await record_of(beside.stack.sim, account_id, lambda r: r is not None)
    await eventually(lambda: beside.statuses(i_account), lambda s: s[-1]["status"] == "OK")


async def test_a_role_that_hides_the_service_password_is_a_retry_naming_the_permission(beside: Beside) -> None:
    await misconfigured_until_healed(
        beside, {"hidden_fields": ["h323_password"]}, "h323_password", "grant its role read access", PB_LOGIN
    )


async def test_an_imei_field_the_installation_does_not_define_is_a_retry_naming_it(beside: Beside) -> None:
    await misconfigured_until_healed(
        beside, {"undefined_custom_fields": ["IMEI"]}, "no account custom field 'IMEI'", "PORTABILLING_IMEI_FIELD"
    )


async def test_a_customer_block_and_suspension_reach_every_account(beside: Beside) -> None:
    sim = beside.stack.sim
    product = await beside.create("products", name="Mobile", messaging_push_events=False)
    customer = await beside.create("customers", name="Suspended soon", custom_fields={"profileName": "Business"})
    i_customer = customer["i_customer"]
    ids = []
    for _ in range(2):
        account = await beside.create(
            "accounts", id=new_id(), i_customer=i_customer, i_product=product["i_product"], imei=new_imei()
        )
        ids.append(account["id"])

    async def all_blocked(blocked: bool) -> None:
        for account_id in ids:
            await record_of(sim, account_id, lambda r: r is not None and r.blocked == blocked)

    await all_blocked(False)
    await beside.change(f"customers/{i_customer}", blocked=True)  # Customer/Blocked
    await all_blocked(True)
    await beside.change(f"customers/{i_customer}", blocked=False)  # Customer/Unblocked
    await all_blocked(False)
    await beside.change(f"customers/{i_customer}", suspended=True)  # Customer/Status/Suspended
    await all_blocked(True)
    await beside.change(f"customers/{i_customer}", suspended=False)  # Customer/Status/SuspensionRemoved
    await all_blocked(False)
    metrics = (await beside.stack.api.get("/metrics")).text
    assert 'portabilling_events_total{known="true",outcome="accepted"}' in metrics


@pytest.mark.parametrize(
    ("event_type", "names"),
    [
        ("Invoice/New", {"i_customer", "i_account"}),
        ("Invoice/Status/Changed", {"i_customer"}),
        ("DID/Status/Assigned", {"i_account"}),
        ("PaymentTransaction/New", {"i_customer"}),
        ("Customer/BalanceChanged", {"i_customer"}),
        ("Account/BalanceChanged", {"i_account"}),
        ("Customer/ZeroAvailableFunds", {"i_customer"}),
    ],
)
async def test_noise_is_answered_ignored_and_pushes_nothing(beside: Beside, event_type: str, names: set[str]) -> None:
    """A new ESPF handler is subscribed to every type: an invoice's, a DID's, a payment's or a balance's
    event changes nothing the CMMS is given, even when it names an account or a customer: it is stored
    (a repeat is known as one) and told to no workflow."""
    product = await beside.create("products", name="Mobile", messaging_push_events=False)
    customer = await beside.create("customers", name="Noisy", custom_fields={"profileName": "Business"})
    account = await beside.create(
        "accounts", id=new_id(), i_customer=customer["i_customer"], i_product=product["i_product"]
    )
    ids = {"i_customer": str(customer["i_customer"]), "i_account": str(account["i_account"])}
    variables = {"i_event": str(930000000 + secrets.randbelow(10**8))} | {k: ids[k] for k in names}
    answer = await beside.stack.api.post(
        "/v1/portabilling/events",
        json={"event_type": event_type, "variables": variables},
        headers=basic(ESPF_USER, ESPF_PASSWORD),
    )
    assert (answer.status_code, answer.json()["status"]) == (200, "ignored")
    metrics = (await beside.stack.api.get("/metrics")).text
    assert 'portabilling_events_total{known="true",outcome="ignored"}' in metrics


async def test_a_status_for_an_account_gone_from_portabilling_ends_the_push(beside: Beside) -> None:
    """PortaBilling no longer has the account: its CMMS record is removed once, and the status it cannot
    take (404) is logged and counted, not retried with the push."""
    sim = beside.stack.sim
    i_account, account_id, _ = await beside.new_account(new_imei())
    await record_of(sim, account_id, lambda r: r is not None)
    await eventually(lambda: beside.statuses(i_account), lambda s: any(x["status"] == "OK" for x in s))
    (await beside.pb.delete(f"/_sim/accounts/{i_account}")).raise_for_status()
    variables = {"i_event": str(940000000 + secrets.randbelow(10**8)), "i_account": str(i_account)}
    event = {"event_type": "Account/Blocked", "variables": variables}
    answer = await beside.stack.api.post("/v1/portabilling/events", json=event, headers=basic(ESPF_USER, ESPF_PASSWORD))
    assert answer.json()["status"] == "accepted"
    await record_of(sim, account_id, lambda r: r is None)
    metrics = await eventually(lambda: worker_metrics(beside), lambda m: "business_billing_status_refused_total" in m)
    assert 'kind="gone"' in metrics
    # The push ended: no attempt of it waits to be tried again.
    handle = beside.stack.temporal.get_workflow_handle(f"account-pb-{i_account}")
    await eventually(handle.describe, lambda d: not d.raw_description.pending_activities)


def counted(metrics: str, name: str, label: str) -> bool:
    return any(line.startswith(name + "{") and label in line for line in metrics.splitlines())


async def test_a_status_portabilling_refuses_leaves_the_push_done_and_is_counted(beside: Beside) -> None:
    """A status PortaBilling refuses (400: a group it has not registered) does not fail the push nor
    have it repeated: the CMMS holds the account, the refusal is counted, no attempt waits."""
    sim = beside.stack.sim
    (await beside.pb.post("/_sim/faults", json={"status_api": "refusing"})).raise_for_status()
    try:
        i_account, account_id, _ = await beside.new_account(new_imei())
        await record_of(sim, account_id, lambda r: r is not None)
        await eventually(
            lambda: worker_metrics(beside),
            lambda m: counted(m, "business_billing_status_refused_total", 'kind="refused"'),
        )
        handle = beside.stack.temporal.get_workflow_handle(f"account-pb-{i_account}")
        await eventually(handle.describe, lambda d: not d.raw_description.pending_activities)
    finally:
        (await beside.pb.post("/_sim/faults", json={"status_api": "ok"})).raise_for_status()
    assert await beside.statuses(i_account) == []
