"""The CMMS simulator, driven over HTTP as a real separate process."""

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest

from contracts.cmms import password_digest
from tests.support.simulator import SimulatorProcess, running_simulator

_serial = itertools.count(1)


def new_ids() -> tuple[str, str]:
    """A fresh (account ID, IMEI) pair, so tests sharing one simulator never collide."""
    n = next(_serial)
    return f"4915100{n:06d}", f"35000000{n:07d}"


def account_body(imei: str | None, **changes: Any) -> dict[str, Any]:
    return {"password": "sip-secret-1", "imei": imei, "profile": "Business", "domain": "acme.example"} | changes


@pytest.fixture(scope="module")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatorProcess]:
    async with running_simulator(tmp_path_factory.mktemp("cmms-sim")) as running:
        yield running


@pytest.fixture(autouse=True)
async def healthy(sim: SimulatorProcess) -> AsyncIterator[None]:
    await sim.clear_faults()
    await sim.reset_stats()
    yield
    await sim.clear_faults()


async def put(sim: SimulatorProcess, account_id: str, body: dict[str, Any]) -> httpx.Response:
    return await sim.http.put(f"/api/v1/accounts/{account_id}", json=body, headers=sim.auth)


# --- provisioning API ---


async def test_upsert_creates_then_raises_the_version_only_on_change(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    before = datetime.now(UTC)
    created = await put(sim, account_id, account_body(imei))
    assert created.status_code == 201
    created_at = datetime.fromisoformat(created.json().pop("updated_at"))
    assert before <= created_at <= datetime.now(UTC)
    assert created.json() | {"updated_at": None} == {
        "account_id": account_id,
        "imei": imei,
        "profile": "Business",
        "domain": "acme.example",
        "messaging_enabled": True,
        "blocked": False,
        "version": 1,
        "updated_at": None,
        "password_digest": password_digest(account_id, "sip-secret-1"),
    }
    assert "sip-secret-1" not in created.text

    same = await put(sim, account_id, account_body(imei))
    assert (same.status_code, same.json()["version"]) == (200, 1)
    assert datetime.fromisoformat(same.json()["updated_at"]) == created_at  # nothing changed

    changed = await put(sim, account_id, account_body(imei, domain="other.example"))
    assert (changed.status_code, changed.json()["version"]) == (200, 2)
    assert datetime.fromisoformat(changed.json()["updated_at"]) > created_at

    new_password = await put(sim, account_id, account_body(imei, domain="other.example", password="p2"))
    assert new_password.json()["version"] == 3

    suspended = await put(
        sim, account_id, account_body(imei, domain="other.example", password="p2", messaging_enabled=False)
    )
    assert suspended.json()["messaging_enabled"] is False and suspended.json()["version"] == 4
    # null keeps the current messaging state, and so changes nothing
    kept = await put(sim, account_id, account_body(imei, domain="other.example", password="p2", messaging_enabled=None))
    assert kept.json()["messaging_enabled"] is False and kept.json()["version"] == 4

    record = await sim.get_record(account_id)
    assert record is not None and record.version == 4 and record.domain == "other.example"


async def test_unknown_profile_is_rejected_with_a_reason(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    response = await put(sim, account_id, account_body(imei, profile="Gold"))
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown profile 'Gold'; known: Business, Residential"}
    assert await sim.get_record(account_id) is None


async def test_an_imei_held_by_another_account_is_a_conflict(sim: SimulatorProcess) -> None:
    first, imei = new_ids()
    second, _ = new_ids()
    assert (await put(sim, first, account_body(imei))).status_code == 201
    conflict = await put(sim, second, account_body(imei))
    assert conflict.status_code == 409
    assert imei in conflict.json()["detail"]
    assert await sim.get_record(second) is None
    # once the first account is gone, the IMEI is free
    assert (await sim.http.delete(f"/api/v1/accounts/{first}", headers=sim.auth)).status_code == 204
    assert (await put(sim, second, account_body(imei))).status_code == 201


async def test_read_list_and_delete(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    assert (await sim.http.get(f"/api/v1/accounts/{account_id}", headers=sim.auth)).status_code == 404
    await put(sim, account_id, account_body(imei))
    assert account_id in [r.account_id for r in await sim.records()]
    assert (await sim.http.delete(f"/api/v1/accounts/{account_id}", headers=sim.auth)).status_code == 204
    assert (await sim.http.delete(f"/api/v1/accounts/{account_id}", headers=sim.auth)).status_code == 404
    assert await sim.get_record(account_id) is None


async def test_the_list_pages_in_account_id_order(tmp_path: Path) -> None:
    async with running_simulator(tmp_path) as own:  # a simulator of its own: the page boundaries are exact
        ids = [f"page-{n:02d}" for n in range(5)]
        for account_id in reversed(ids):
            assert (await put(own, account_id, account_body(None))).status_code == 201
        first = await own.http.get("/api/v1/accounts", params={"limit": 2}, headers=own.auth)
        assert first.status_code == 200
        assert [r["account_id"] for r in first.json()["accounts"]] == ids[:2] and first.json()["next"] == ids[1]
        assert first.json()["accounts"][0]["password_digest"] == password_digest(ids[0], "sip-secret-1")
        second = await own.http.get("/api/v1/accounts", params={"after": ids[1], "limit": 2}, headers=own.auth)
        assert [r["account_id"] for r in second.json()["accounts"]] == ids[2:4] and second.json()["next"] == ids[3]
        last = await own.http.get("/api/v1/accounts", params={"after": ids[3], "limit": 2}, headers=own.auth)
        assert last.json() == {"accounts": [last.json()["accounts"][0]], "next": None}
        # a page that ends exactly at the last record says so
        exact = await own.http.get("/api/v1/accounts", params={"after": ids[2], "limit": 2}, headers=own.auth)
        assert exact.json()["next"] is None
        # `after` need not be an existing id; past the end is an empty last page
        between = await own.http.get("/api/v1/accounts", params={"after": "page-00x"}, headers=own.auth)
        assert [r["account_id"] for r in between.json()["accounts"]] == ids[1:]
        past = await own.http.get("/api/v1/accounts", params={"after": "zzz"}, headers=own.auth)
        assert past.json() == {"accounts": [], "next": None}
        assert [r.account_id for r in await own.records()] == ids


@pytest.mark.parametrize("limit", [0, -1, 1001, "ten"])
async def test_the_list_limit_is_bounded(sim: SimulatorProcess, limit: int | str) -> None:
    response = await sim.http.get("/api/v1/accounts", params={"limit": limit}, headers=sim.auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_the_list_is_subject_to_faults(sim: SimulatorProcess) -> None:
    await sim.set_faults(outage_seconds=5)
    assert (await sim.http.get("/api/v1/accounts", headers=sim.auth)).status_code == 503


# --- control API: drift behind billing's back ---


async def test_a_raw_record_is_written_as_given(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei))
    calls = (await sim.stats())["provisioning_calls"]
    # no profile check, no version rise: a CMMS-side mistake
    raw = {"password": "other", "imei": imei, "profile": "Gold", "domain": "x.example", "messaging_enabled": False}
    written = await sim.http.put(f"/_sim/accounts/{account_id}", json=raw)
    assert written.status_code == 200
    assert written.json()["version"] == 1 and written.json()["profile"] == "Gold"
    record = await sim.get_record(account_id)
    assert record is not None
    assert (record.profile, record.domain, record.messaging_enabled, record.version) == ("Gold", "x.example", False, 1)
    assert record.password_digest == password_digest(account_id, "other")
    # an explicit version is taken as it is, even a lower one
    assert (await sim.put_raw(account_id, **raw | {"version": 0})).version == 0
    # a record for an account billing never had
    orphan, _ = new_ids()
    assert (await sim.put_raw(orphan, password="p", profile="Residential", domain="d.example")).version == 1
    assert (await sim.stats())["provisioning_calls"] == calls + 1  # the control API is not the CMMS's traffic
    assert "other" not in written.text


async def test_a_raw_record_is_refused_for_a_taken_imei_or_a_bad_body(sim: SimulatorProcess) -> None:
    holder, imei = new_ids()
    other, _ = new_ids()
    await put(sim, holder, account_body(imei))
    taken = await sim.http.put(
        f"/_sim/accounts/{other}", json={"password": "p", "imei": imei, "profile": "B", "domain": "d"}
    )
    assert taken.status_code == 409
    for bad in ({"imei": imei}, {"password": "p", "profile": "B", "domain": "d", "nonsense": 1}):
        assert (await sim.http.put(f"/_sim/accounts/{other}", json=bad)).status_code == 422
    assert await sim.get_record(other) is None


async def test_a_record_is_lost_behind_billings_back(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei))
    assert (await sim.http.delete(f"/_sim/accounts/{account_id}")).status_code == 204
    assert await sim.get_record(account_id) is None
    assert (await sim.http.delete(f"/_sim/accounts/{account_id}")).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a2FubmVsOmthbm5lbA=="}],
    ids=["none", "wrong", "basic"],
)
async def test_the_provisioning_api_needs_the_token(sim: SimulatorProcess, headers: dict[str, str]) -> None:
    account_id, imei = new_ids()
    calls = [
        sim.http.put(f"/api/v1/accounts/{account_id}", json=account_body(imei), headers=headers),
        sim.http.get(f"/api/v1/accounts/{account_id}", headers=headers),
        sim.http.get("/api/v1/accounts", headers=headers),
        sim.http.delete(f"/api/v1/accounts/{account_id}", headers=headers),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 401
    assert await sim.get_record(account_id) is None


async def test_a_bad_body_is_422_and_not_echoed(sim: SimulatorProcess) -> None:
    account_id, _ = new_ids()
    response = await put(sim, account_id, account_body("123", password="echo-me-not"))
    assert response.status_code == 422
    assert "echo-me-not" not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "imei"]


# --- device side ---


async def test_the_device_gets_its_credentials_by_imei(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei, profile="Residential"))
    response = await sim.http.post("/device/v1/provision", json={"imei": imei})
    assert response.status_code == 200
    assert response.json() == {
        "account_id": account_id,
        "password": "sip-secret-1",
        "domain": "acme.example",
        "profile": "Residential",
        "messaging_enabled": True,
        "version": 1,
    }


async def test_the_device_side_refuses_unknown_and_blocked(sim: SimulatorProcess) -> None:
    _, unknown_imei = new_ids()
    unknown = await sim.http.post("/device/v1/provision", json={"imei": unknown_imei})
    assert unknown.status_code == 404
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei, blocked=True))
    assert (await sim.http.post("/device/v1/provision", json={"imei": imei})).status_code == 403
    assert (await sim.http.post("/device/v1/provision", json={"imei": "12"})).status_code == 422


# --- SMS gateway ---


async def test_sendsms_accepts_like_kannel_and_keeps_an_outbox(sim: SimulatorProcess) -> None:
    creds = {"username": sim.sms_username, "password": sim.sms_password}
    # GET with the `+` encoded (%2B), as a careful client sends it
    get = await sim.http.get("/cgi-bin/sendsms", params=creds | {"to": "+4915700000001", "text": "code 1"})
    assert (get.status_code, get.text) == (202, "0: Accepted for delivery")
    assert get.headers["content-type"].startswith("text/plain")
    # the `+` unencoded arrives as a space
    raw = (
        f"/cgi-bin/sendsms?username={sim.sms_username}&password={sim.sms_password}"
        "&to=+4915700000001&text=code+2&from=Acme"
    )
    assert (await sim.http.get(raw)).status_code == 202
    # POST: the text is the body, every parameter an X-Kannel header (UTF-8 text kept as such)
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "X-Kannel-Username": sim.sms_username,
        "X-Kannel-Password": sim.sms_password,
        "X-Kannel-To": "4915700000001",
        "X-Kannel-Coding": "2",
    }
    post = await sim.http.post("/cgi-bin/sendsms", content="code 3 — ünïcode".encode(), headers=headers)
    assert (post.status_code, post.text) == (202, "0: Accepted for delivery")

    for to in ("+4915700000001", "4915700000001"):
        messages = await sim.outbox(to)
        assert [m["text"] for m in messages] == ["code 1", "code 2", "code 3 — ünïcode"]
        assert {m["to"] for m in messages} == {"+4915700000001"}
    # an unencoded `+` in the outbox query works too
    unencoded = await sim.http.get("/sms/v1/outbox?to=+4915700000001")
    assert len(unencoded.json()) == 3
    assert len(await sim.outbox()) >= 3
    assert await sim.outbox("4915700000999") == []
    # uvicorn's access log saw these query strings: neither the password nor the text is in it
    log = sim.log_text()
    assert "sendsms?" in log and "password=***" in log
    assert sim.sms_password not in log and "code+2" not in log and sim.token not in log


async def test_sendsms_refuses_what_kannel_refuses(sim: SimulatorProcess) -> None:
    wrong = await sim.http.get(
        "/cgi-bin/sendsms", params={"username": "kannel", "password": "nope", "to": "4915700000002", "text": "x"}
    )
    assert (wrong.status_code, wrong.text) == (403, "Authorization failed for sendsms")
    creds = {"username": sim.sms_username, "password": sim.sms_password}
    missing = await sim.http.get("/cgi-bin/sendsms", params=creds | {"text": "x"})
    assert (missing.status_code, missing.text) == (400, "Missing receiver number, rejected")
    # Kannel reads no form body: a form-encoded POST is refused whatever it holds
    form = await sim.http.post("/cgi-bin/sendsms", data=creds | {"to": "4915700000002", "text": "x"})
    assert (form.status_code, form.text) == (400, "Invalid content-type")
    json_body = await sim.http.post("/cgi-bin/sendsms", json={"to": "4915700000002"})
    assert (json_body.status_code, json_body.text) == (400, "Invalid content-type")
    # a text/plain POST takes its parameters from the headers, not from the query string
    query_creds = await sim.http.post(
        "/cgi-bin/sendsms",
        params=creds | {"to": "4915700000002"},
        content=b"x",
        headers={"Content-Type": "text/plain"},
    )
    assert (query_creds.status_code, query_creds.text) == (403, "Authorization failed for sendsms")
    headers = {"Content-Type": "text/plain", "X-Kannel-Username": sim.sms_username}
    headers["X-Kannel-Password"] = sim.sms_password
    no_receiver = await sim.http.post("/cgi-bin/sendsms", content=b"x", headers=headers)
    assert (no_receiver.status_code, no_receiver.text) == (400, "Missing receiver(s) number(s), rejected")
    bad_mask = await sim.http.post(
        "/cgi-bin/sendsms", content=b"x", headers=headers | {"X-Kannel-To": "4915700000002", "X-Kannel-DLR-Mask": "x"}
    )
    assert (bad_mask.status_code, bad_mask.text) == (400, "DLR-Mask field misformed, rejected")
    assert await sim.outbox("4915700000002") == []


async def test_the_smsc_answers_kannels_generic_http_driver(sim: SimulatorProcess) -> None:
    """What `devstack.kannel`'s smsc group expects: `Sent <id>`, `Rejected…`, `Retry…`."""
    submit = {"to": "+4915700000004", "from": "CMMS", "text": "Code 1 — ü", "coding": "0", "dlr-mask": "27"}
    try:
        sent = await sim.http.get("/smsc/v1/submit", params=submit)
        assert sent.status_code == 200 and re.fullmatch(r"Sent [0-9a-f]+", sent.text)
        # UCS-2 (coding 2) arrives as UTF-16BE bytes
        ucs2 = quote_from_bytes("Code 2 — ü".encode("utf-16-be"))
        query = f"to=%2B4915700000004&from=CMMS&coding=2&dlr-mask=27&text={ucs2}"
        assert (await sim.http.get(f"/smsc/v1/submit?{query}")).status_code == 200
        assert [m["text"] for m in await sim.outbox("4915700000004")] == ["Code 1 — ü", "Code 2 — ü"]
        for outcome, answer in (("rejected", "Rejected"), ("unavailable", "Retry"), ("undelivered", "Sent")):
            await sim.http.put("/_sim/smsc", json={"outcome": outcome})
            assert (await sim.http.get("/smsc/v1/submit", params=submit)).text.startswith(answer)
        assert len(await sim.outbox("4915700000004")) == 2
        assert (await sim.http.get("/_sim/smsc")).json()["submissions"] >= 5
    finally:
        await sim.http.put("/_sim/smsc", json={"outcome": "delivered"})


# --- persistence ---


async def test_state_survives_a_restart_and_faults_do_not(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei))
    await put(sim, account_id, account_body(imei, domain="v2.example"))
    creds = {"username": sim.sms_username, "password": sim.sms_password}
    await sim.http.get("/cgi-bin/sendsms", params=creds | {"to": "4915700000003", "text": "kept"})
    await sim.set_faults(error_rate=1.0)

    port = sim.port
    await sim.restart()

    assert sim.port == port
    record = await sim.get_record(account_id)
    assert record is not None and record.version == 2 and record.domain == "v2.example"
    assert [m["text"] for m in await sim.outbox("+4915700000003")] == ["kept"]
    assert (await sim.http.get("/_sim/faults")).json()["error_rate"] == 0.0


# --- faults ---


async def test_an_outage_answers_503_until_it_ends(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    shown = await sim.set_faults(outage_seconds=1.0)
    assert 0 < shown["outage_remaining_seconds"] <= 1.0
    response = await put(sim, account_id, account_body(imei))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    # the device side and the SMS sink are not part of the outage
    assert (await sim.http.get("/healthz")).status_code == 200
    await asyncio.sleep(1.1)
    assert (await put(sim, account_id, account_body(imei))).status_code == 201


async def test_error_rate_one_fails_every_call_without_applying_it(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei))
    await sim.set_faults(error_rate=1.0)
    for _ in range(3):
        assert (await put(sim, account_id, account_body(imei, domain="lost.example"))).status_code == 500
    await sim.clear_faults()
    record = await sim.get_record(account_id)
    assert record is not None and record.version == 1 and record.domain == "acme.example"


async def test_latency_delays_provisioning_calls(sim: SimulatorProcess) -> None:
    await sim.set_faults(latency_ms=300)
    started = time.monotonic()
    assert (await sim.http.get("/api/v1/accounts", headers=sim.auth)).status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_the_rate_limit_answers_429_with_retry_after(sim: SimulatorProcess) -> None:
    await sim.set_faults(rate_limit_per_second=3)
    # Start early in a wall-clock second, so the burst falls inside one window.
    await asyncio.sleep(1 - time.time() % 1)
    responses = await asyncio.gather(*(sim.http.get("/api/v1/accounts", headers=sim.auth) for _ in range(10)))
    ok = [r for r in responses if r.status_code == 200]
    limited_all = [r for r in responses if r.status_code == 429]
    # Normally 3 and 7; a slow machine may straddle two seconds, never more than 3 in any one.
    assert len(ok) + len(limited_all) == 10 and len(ok) in (3, 6)
    assert (await sim.stats())["max_per_second"] <= 3
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["Retry-After"] == "1"
    await sim.clear_faults()
    assert (await sim.http.get("/api/v1/accounts", headers=sim.auth)).status_code == 200


async def test_faults_are_shown_validated_and_cleared(sim: SimulatorProcess) -> None:
    await sim.set_faults(error_rate=0.5, latency_ms=10, rate_limit_per_second=50)
    shown = (await sim.http.get("/_sim/faults")).json()
    assert shown["error_rate"] == 0.5 and shown["latency_ms"] == 10 and shown["rate_limit_per_second"] == 50
    for bad in (
        {"error_rate": 1.5},
        {"latency_ms": -1},
        {"outage_seconds": -2},
        {"rate_limit_per_second": 0},
        {"nonsense": 1},
    ):
        assert (await sim.http.put("/_sim/faults", json=bad)).status_code == 422, bad
    assert (await sim.http.delete("/_sim/faults")).status_code == 204
    assert (await sim.http.get("/_sim/faults")).json() == {
        "error_rate": 0.0,
        "latency_ms": 0,
        "outage_seconds": 0.0,
        "rate_limit_per_second": None,
        "outage_remaining_seconds": 0.0,
    }


# --- stats ---


async def test_stats_count_served_calls_and_writes(sim: SimulatorProcess) -> None:
    account_id, imei = new_ids()
    await put(sim, account_id, account_body(imei))  # a write
    await put(sim, account_id, account_body(imei))  # unchanged: served, not a write
    await sim.http.get(f"/api/v1/accounts/{account_id}", headers=sim.auth)
    await sim.set_faults(error_rate=1.0)
    await put(sim, account_id, account_body(imei, domain="x.example"))  # rejected by a fault
    await sim.clear_faults()

    stats = await sim.stats()
    assert stats["provisioning_calls"] == 3
    assert stats["writes"] == 1
    assert sum(stats["per_second"].values()) == 3
    assert 1 <= stats["max_per_second"] <= 3
    assert all(key.isdigit() for key in stats["per_second"])

    await sim.reset_stats()
    assert await sim.stats() == {"provisioning_calls": 0, "per_second": {}, "max_per_second": 0, "writes": 0}


async def test_healthz(sim: SimulatorProcess) -> None:
    response = await sim.http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
