"""The CMMS client against the real simulator process (odd answers, from a mock transport:
tests/unit/test_cmms_client.py)."""

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from clients.cmms import CmmsClient, CmmsError, CmmsMisconfigured, CmmsRejected, CmmsUnavailable
from contracts.cmms import CmmsAccount, password_digest
from tests.support.cmms import PASSWORD, account, assert_no_secrets
from tests.support.net import free_port
from tests.support.simulator import SimulatorProcess, running_simulator

_serial = itertools.count(1)


def new_ids() -> tuple[str, str]:
    n = next(_serial)
    return f"4917600{n:06d}", f"35100000{n:07d}"


@pytest.fixture(scope="module")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    async with running_simulator(tmp_path_factory.mktemp("cmms-client")) as running:
        yield running


@pytest.fixture
async def client(sim: SimulatorProcess) -> AsyncIterator[CmmsClient]:
    await sim.clear_faults()
    async with sim.client() as cmms:
        yield cmms
    await sim.clear_faults()


async def test_upsert_get_and_delete(client: CmmsClient, sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    created = await client.upsert_account(account_id, account(imei))
    assert (created.account_id, created.imei, created.version, created.messaging_enabled) == (
        account_id,
        imei,
        1,
        True,
    )
    assert (await client.upsert_account(account_id, account(imei))).version == 1
    updated = await client.upsert_account(account_id, account(imei, messaging_enabled=False))
    assert (updated.version, updated.messaging_enabled) == (2, False)
    assert await client.get_account(account_id) == updated

    # the password went over the wire: the device receives it
    device = await sim.http.post("/device/v1/provision", json={"imei": imei})
    assert device.json()["password"] == PASSWORD

    assert await client.delete_account(account_id) is True
    assert await client.delete_account(account_id) is False
    assert await client.get_account(account_id) is None


async def test_unknown_profile_is_rejected_with_the_cmms_reason(client: CmmsClient, sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    with pytest.raises(CmmsRejected) as caught:
        await client.upsert_account(account_id, account(imei, profile="Gold"))
    assert caught.value.status == 400
    assert caught.value.reason == "unknown profile 'Gold'; known: Business, Residential"
    assert "unknown profile 'Gold'" in str(caught.value)
    assert_no_secrets(caught.value, PASSWORD, sim.token)


async def test_imei_conflict_is_rejected(client: CmmsClient, sim: SimulatorProcess) -> None:
    first, imei = new_ids()
    second, _ = new_ids()
    await client.upsert_account(first, account(imei))
    with pytest.raises(CmmsRejected) as caught:
        await client.upsert_account(second, account(imei))
    assert caught.value.status == 409 and imei in caught.value.reason
    assert_no_secrets(caught.value, PASSWORD, sim.token)


async def test_a_validation_error_names_the_field_not_the_input(client: CmmsClient, sim: SimulatorProcess) -> None:
    account_id, _ = new_ids()
    invalid = account(None).model_copy(update={"imei": "1"})  # model_copy skips the IMEI check
    with pytest.raises(CmmsRejected) as caught:
        await client.upsert_account(account_id, invalid)
    assert caught.value.status == 422 and caught.value.reason.startswith("body.imei:")
    assert_no_secrets(caught.value, PASSWORD, sim.token)


async def test_a_wrong_token_is_misconfigured_not_refused_and_not_shown(sim: SimulatorProcess) -> None:
    wrong = "tok-wrong-Yy7-secret"
    async with CmmsClient(sim.base_url, wrong) as cmms:
        with pytest.raises(CmmsMisconfigured) as caught:
            await cmms.get_account("4917600999999")
    assert caught.value.status == 401
    assert isinstance(caught.value, CmmsUnavailable)  # retried, never a reason to give an order up
    assert_no_secrets(caught.value, wrong, sim.token)


async def test_a_rotated_token_is_misconfigured_until_the_client_has_the_new_one(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    old, new = sim.token, "tok-rotated-Qq3-secret"
    await sim.rotate_token(new)
    try:
        async with CmmsClient(sim.base_url, old) as stale:
            with pytest.raises(CmmsMisconfigured) as caught:
                await stale.upsert_account(account_id, account(imei))
        assert caught.value.status == 401
        assert_no_secrets(caught.value, PASSWORD, old, new)
        async with CmmsClient(sim.base_url, new) as current:
            assert (await current.upsert_account(account_id, account(imei))).version == 1
    finally:
        await sim.rotate_token(old)


async def test_a_404_on_a_write_is_misconfigured_but_on_a_read_means_absent(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    # A wrong CMMS_URL (one path segment too many): every call lands on a route the CMMS does not have.
    async with CmmsClient(f"{sim.base_url}/wrong-prefix", sim.token) as misplaced:
        with pytest.raises(CmmsMisconfigured) as caught:
            await misplaced.upsert_account(account_id, account(imei))
    assert caught.value.status == 404
    async with sim.client() as cmms:
        assert await cmms.get_account(account_id) is None
        assert await cmms.delete_account(account_id) is False


async def test_an_outage_is_unavailable_with_retry_after(client: CmmsClient, sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await sim.set_faults(outage_seconds=30)
    with pytest.raises(CmmsUnavailable) as caught:
        await client.upsert_account(account_id, account(imei))
    assert caught.value.status == 503
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 30
    assert_no_secrets(caught.value, PASSWORD, sim.token)
    for call in (client.get_account(account_id), client.delete_account(account_id)):
        with pytest.raises(CmmsUnavailable):
            await call


async def test_server_errors_and_rate_limits_are_unavailable(client: CmmsClient, sim: SimulatorProcess) -> None:
    await sim.set_faults(error_rate=1.0)
    with pytest.raises(CmmsUnavailable) as server_error:
        await client.get_account("4917600999998")
    assert server_error.value.status == 500 and server_error.value.retry_after is None

    await sim.set_faults(rate_limit_per_second=1)
    # Five calls in well under two seconds: at most two fit in the limit.
    with pytest.raises(CmmsUnavailable) as limited:
        for _ in range(5):
            await client.get_account("4917600999998")
    assert limited.value.status == 429 and limited.value.retry_after == 1.0


async def test_connection_refused_is_unavailable() -> None:
    token = "tok-nobody-listens"
    async with CmmsClient(f"http://127.0.0.1:{free_port()}", token) as cmms:
        with pytest.raises(CmmsUnavailable) as caught:
            await cmms.upsert_account("4917600999997", account(None))
    assert caught.value.status is None
    assert_no_secrets(caught.value, PASSWORD, token)


async def test_a_slow_cmms_times_out_as_unavailable(sim: SimulatorProcess) -> None:
    await sim.set_faults(latency_ms=1500)
    try:
        async with sim.client(timeout=0.3) as cmms:
            with pytest.raises(CmmsUnavailable) as caught:
                await cmms.upsert_account("4917600999996", account(None))
    finally:
        await sim.clear_faults()
    assert caught.value.status is None and "timed out" in str(caught.value)
    assert_no_secrets(caught.value, PASSWORD, sim.token)


async def test_list_accounts_pages_through_the_records(client: CmmsClient, sim: SimulatorProcess) -> None:
    ids = [f"list-{n}" for n in range(3)]  # sort after the other tests' numeric ids
    for account_id in ids:
        await client.upsert_account(account_id, account(None))
    first = await client.list_accounts("list-", 2)
    assert [r.account_id for r in first.accounts] == ids[:2] and first.next == ids[1]
    assert first.accounts[0].password_digest == password_digest(ids[0], PASSWORD)
    rest = await client.list_accounts(first.next, 1000)
    assert [r.account_id for r in rest.accounts] == ids[2:] and rest.next is None
    everything = await client.list_accounts(None, 1000)
    assert set(ids) <= {r.account_id for r in everything.accounts}


async def test_list_accounts_errors_are_classified_as_the_other_calls(sim: SimulatorProcess) -> None:
    async with CmmsClient(sim.base_url, "tok-wrong-Yy7-secret") as wrong:
        with pytest.raises(CmmsError) as listing:
            await wrong.list_accounts(None, 10)
        with pytest.raises(CmmsError) as reading:
            await wrong.get_account("4917600999999")
    assert type(listing.value) is type(reading.value) and listing.value.status == 401  # type: ignore[attr-defined]
    assert_no_secrets(listing.value, "tok-wrong-Yy7-secret", sim.token)
    async with sim.client() as cmms:
        with pytest.raises(CmmsRejected) as bad_limit:
            await cmms.list_accounts(None, 5000)
        assert bad_limit.value.status == 422 and "limit" in bad_limit.value.reason
        await sim.set_faults(outage_seconds=30)
        with pytest.raises(CmmsUnavailable) as outage:
            await cmms.list_accounts(None, 10)
    assert outage.value.status == 503 and outage.value.retry_after is not None


async def test_a_rate_limit_holds_in_every_second(tmp_path: Path) -> None:
    """20 calls at once, limit 5/s: the CMMS never sees more than 5 in any second of its clock."""
    account = CmmsAccount(password=SecretStr("Pacing-Secret-1"), profile="Residential", domain="pace.example")
    async with running_simulator(tmp_path) as quiet_sim:  # its own: no late call from another test counts
        async with CmmsClient(quiet_sim.base_url, quiet_sim.token, rate_limit_per_second=5) as cmms:
            await asyncio.gather(*(cmms.upsert_account(f"pace-{i}", account) for i in range(20)))
        stats = await quiet_sim.stats()
    assert stats["provisioning_calls"] == 20
    assert 1 <= stats["max_per_second"] <= 5
