"""The ESPF status API as PortaBilling's releases answer it, against the simulator in each of its ways:
MR100's takes form-encoded bodies only, MR101 and later JSON; the client sends JSON, and a body answered
415 once more as a form, then keeps to what was taken. A status PortaBilling refuses for good (a group it
does not know, an account it no longer has) is a `PortaBillingRejected` naming the status."""

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clients.portabilling.client import PortaBillingClient, PortaBillingRejected
from tests.support.portabilling import (
    LOGIN,
    PASSWORD,
    EventReceiver,
    PortaBillingAdmin,
    portabilling_client,
    running_portabilling_sim,
)

_serial = itertools.count(1)


@pytest.fixture(scope="module")
async def form_sim(receiver: EventReceiver) -> AsyncIterator[str]:
    """A simulator whose status API answers as MR100's does: forms only."""
    async with running_portabilling_sim(
        receiver.url, PORTABILLING_SIM_REPEAT_EVERY="0", PORTABILLING_SIM_STATUS_ENCODING="form"
    ) as url:
        yield url


async def an_account(admin: PortaBillingAdmin) -> int:
    i_customer = await admin.add_customer("Acme", {"profileName": "Business"})
    created = await admin.add_account(f"4941{next(_serial):07d}", i_customer, await admin.add_product())
    i_account: int = created["i_account"]
    return i_account


async def status_calls(admin: PortaBillingAdmin) -> dict[str, Any]:
    calls: dict[str, Any] = (await admin.stats())["calls"]
    return {name: n for name, n in calls.items() if name.startswith("status")}


async def test_mr100_takes_a_form_after_refusing_json_once(form_sim: str) -> None:
    admin = PortaBillingAdmin(form_sim)
    i_account = await an_account(admin)
    async with portabilling_client(form_sim) as client:
        await client.post_status(i_account, "OK", "the CMMS holds the account as 1 (version 1)", group="VoIP")
        await client.post_status(i_account, "RETRY", "CMMS unavailable, retrying: 503", group="VoIP")
    recorded = await admin.statuses(i_account)
    assert [(s["status"], s["group"]) for s in recorded] == [("OK", "VoIP"), ("RETRY", "VoIP")]
    assert recorded[1]["message"] == "CMMS unavailable, retrying: 503"
    # JSON was refused once; the second status went as a form straight away.
    assert await status_calls(admin) == {"status 415": 1, "status": 2}


async def test_the_mr100_status_api_refuses_json_with_415(form_sim: str) -> None:
    admin = PortaBillingAdmin(form_sim)
    i_account = await an_account(admin)
    async with httpx.AsyncClient(base_url=form_sim, timeout=5) as http:
        login = await http.post("/rest/Session/login", json={"params": {"login": LOGIN, "password": PASSWORD}})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = {"status": "OK", "group": "VoIP", "message": "done"}
        as_json = await http.post(f"/espf/v1/account/i/{i_account}/status", json=body, headers=headers)
        as_form = await http.post(f"/espf/v1/account/i/{i_account}/status", data=body, headers=headers)
    assert (as_json.status_code, as_form.status_code) == (415, 200)


async def test_json_is_sent_as_json_to_a_later_release(admin: PortaBillingAdmin, sim_url: str) -> None:
    i_account = await an_account(admin)
    before = await status_calls(admin)
    async with portabilling_client(sim_url) as client:
        await client.post_status(i_account, "OK", "done", group="VoIP")
    after = await status_calls(admin)
    assert after.get("status", 0) - before.get("status", 0) == 1
    assert after.get("status 415", 0) == before.get("status 415", 0)


@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_a_group_portabilling_does_not_know_is_rejected_with_400(
    encoding: str, sim_url: str, form_sim: str
) -> None:
    url = form_sim if encoding == "form" else sim_url
    i_account = await an_account(PortaBillingAdmin(url))
    client: PortaBillingClient
    async with portabilling_client(url) as client:
        with pytest.raises(PortaBillingRejected) as raised:
            await client.post_status(i_account, "OK", "done", group="CMMS")
    assert raised.value.status == 400
    assert "not registered" in str(raised.value)


async def test_an_account_removed_from_portabilling_is_rejected_with_404(
    admin: PortaBillingAdmin, sim_url: str
) -> None:
    i_account = await an_account(admin)
    await admin.remove_account(i_account)
    async with portabilling_client(sim_url) as client:
        assert await client.account(i_account) is None
        with pytest.raises(PortaBillingRejected) as raised:
            await client.post_status(i_account, "OK", "removed from the CMMS", group="VoIP")
    assert raised.value.status == 404
