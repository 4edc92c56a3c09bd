"""Bulk imports end to end, on SQLite and PostgreSQL billing: the API, the real worker, the CMMS simulator.

Rows are checked first and rejected whole; accepted rows reach the CMMS through the accounts' workflows;
the same file again changes nothing; `in_cmms` rows are adopted (compared, repaired, never a new password).
"""

import asyncio
import json
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.service import RPCError, RPCStatusCode

from billing.db import snapshot
from billing.models import Account, AccountStatus, Import, ImportRow, PushStatus
from contracts.cmms import password_digest
from contracts.provisioning import account_workflow_id
from contracts.search_attributes import IMPORT_ID, IMPORT_ROWS_LEFT, PROVISIONING_STATE
from tests.support.catalog import Catalog, new_id, order_body, random_imei, seed_catalog
from tests.support.orders import finished, submit
from tests.support.polling import eventually
from tests.support.stack import Stack

NDJSON = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv"}
PROFILE, DOMAIN = "Business", "acme.example"


def ndjson(*rows: dict[str, Any] | str) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


def row(catalog: Catalog, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "account_id": new_id("imp"),
        "customer_id": catalog.customer_id,
        "product_id": catalog.product_id,
        "imei": random_imei(),
    }
    return values | fields


async def post_import(stack: Stack, body: bytes, headers: dict[str, str] = NDJSON) -> tuple[int, dict[str, Any]]:
    response = await stack.api.post("/v1/imports", content=body, headers=stack.admin | headers)
    return response.status_code, response.json()


async def completed(stack: Stack, import_id: str, within: float = 120) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        response = await stack.api.get(f"/v1/imports/{import_id}", headers=stack.admin)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return await eventually(read, lambda p: p["status"] == "completed", within=within, what="the import completed")


async def accounts_of(stack: Stack, ids: list[str]) -> dict[str, Account]:
    async with snapshot(stack.sessions) as session:
        found = await session.exec(select(Account).where(col(Account.account_id).in_(ids)))
        return {account.account_id: account for account in found}


async def test_rows_are_checked_first_and_a_rejected_row_is_not_imported_at_all(stack: Stack) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": PROFILE, "domain": DOMAIN})
    order = order_body(catalog)
    await submit(stack, order)
    held = await finished(stack, order["order_id"])  # an account (and its IMEI) billing already has
    taken_imei = order["account"]["imei"]
    twice_id, twice_imei = new_id("imp"), random_imei()
    good = [row(catalog), row(catalog, password="a-Good-Pass-1"), row(catalog, imei=None)]
    lines: list[dict[str, Any] | str] = [
        good[0],  # 1
        row(catalog, account_id="-starts-with-a-dash"),  # 2
        row(catalog, customer_id="no-such-customer"),  # 3
        row(catalog, product_id="no-such-product"),  # 4
        row(catalog, imei="12345"),  # 5
        row(catalog, imei="490154203237519"),  # 6: the check digit is wrong
        row(catalog, imei=taken_imei),  # 7
        row(catalog, account_id=held["account_id"]),  # 8
        row(catalog, account_id=twice_id),  # 9
        row(catalog, account_id=twice_id),  # 10
        row(catalog, imei=twice_imei),  # 11
        row(catalog, imei=twice_imei),  # 12
        row(catalog, password="short"),  # 13
        row(catalog, in_cmms=True),  # 14: no password
        "{not json",  # 15
        row(catalog, colour="blue"),  # 16
        good[1],  # 17
        "",  # 18: a blank line is no row
        good[2],  # 19
        row(catalog, customer_id=None),  # 20
    ]
    status, answer = await post_import(stack, ndjson(*lines))
    assert status == 202, answer
    reasons = {r["line"]: r["reason"] for r in answer["rejected"]}
    assert answer["total"] == 19 and answer["accepted"] == 3 and len(reasons) == 16
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20]
    assert reasons[2].startswith("account_id:")
    assert reasons[3] == "customer 'no-such-customer' does not exist"
    assert reasons[4] == "product 'no-such-product' does not exist"
    assert reasons[5] == "imei: an IMEI is 15 digits"
    assert "check digit" in reasons[6]
    assert reasons[7] == f"IMEI {taken_imei} already belongs to an account"
    assert reasons[8] == f"account {held['account_id']!r} already exists"
    assert reasons[9] == f"account id {twice_id} is also on line 10" and reasons[10].endswith("on line 9")
    assert reasons[11] == f"IMEI {twice_imei} is also on line 12"
    assert reasons[13].startswith("password:") and "short" not in reasons[13]
    assert reasons[14].startswith("in_cmms rows must carry the account's password")
    assert reasons[15] == "the line is not valid JSON"
    assert reasons[16].startswith("unknown field 'colour'")
    assert reasons[20] == "customer_id is missing"

    # Nothing of a rejected row is in billing; the accepted ones are there whole.
    rejected_ids = [line["account_id"] for n, line in enumerate(lines, 1) if isinstance(line, dict) and n in reasons]
    async with snapshot(stack.sessions) as session:
        imported = list(await session.exec(select(ImportRow).where(ImportRow.import_id == answer["import_id"])))
    assert sorted(r.account_id for r in imported) == sorted(g["account_id"] for g in good)
    found = await accounts_of(stack, [i for i in rejected_ids if i not in (held["account_id"],)])
    assert found == {}
    progress = await completed(stack, answer["import_id"])
    assert {k: progress[k] for k in ("total", "done", "failed", "rejected")} == {
        "total": 19,
        "done": 3,
        "failed": 0,
        "rejected": 16,
    }
    accounts = await accounts_of(stack, [g["account_id"] for g in good])
    for g in good:
        account = accounts[g["account_id"]]
        assert account.status == AccountStatus.active and account.provisioning_state == PushStatus.ok
        record = await stack.sim.get_record(g["account_id"])
        assert record is not None and (record.imei, record.profile, record.domain) == (g["imei"], PROFILE, DOMAIN)
        assert record.password_digest == password_digest(g["account_id"], account.sip_password)
    assert accounts[good[1]["account_id"]].sip_password == "a-Good-Pass-1"
    assert len(accounts[good[0]["account_id"]].sip_password) == 24  # generated, as an order's is


async def test_a_file_that_cannot_be_read_is_refused_whole(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    first = row(catalog)
    assert (await post_import(stack, ndjson(first), {"Content-Type": "application/json"}))[0] == 415
    status, problem = await post_import(stack, b"account_id,colour\nx,blue\n", CSV)
    assert status == 422 and "header" in problem["detail"]
    assert (await post_import(stack, b"\n\n"))[0] == 422
    assert (await post_import(stack, b"\xff\xfe{}"))[0] == 422
    assert await accounts_of(stack, [first["account_id"]]) == {}


async def test_csv_with_generated_passwords(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    ids = [new_id("csv") for _ in range(3)]
    text = "account_id,customer_id,product_id,imei,password,in_cmms\n" + "".join(
        f"{i},{catalog.customer_id},{catalog.product_id},{random_imei()},,false\n" for i in ids
    )
    text += f"{new_id('csv')},{catalog.customer_id},{catalog.product_id},,,maybe\n"
    status, answer = await post_import(stack, text.encode(), CSV)
    assert status == 202 and answer["accepted"] == 3
    assert answer["rejected"] == [{"line": 5, "reason": "in_cmms: true or false"}]
    await completed(stack, answer["import_id"])
    accounts = await accounts_of(stack, ids)
    for account_id in ids:
        record = await stack.sim.get_record(account_id)
        assert record is not None and record.version == 1
        assert record.password_digest == password_digest(account_id, accounts[account_id].sip_password)


async def test_the_same_file_again_answers_the_same_and_changes_nothing(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    rows = [row(catalog) for _ in range(3)] + [row(catalog, product_id="no-such-product")]
    body = ndjson(*rows)
    status, first = await post_import(stack, body)
    assert status == 202 and first["accepted"] == 3
    before = await completed(stack, first["import_id"])
    ids = [r["account_id"] for r in rows[:3]]
    versions = {i: (await stack.sim.get_record(i)) for i in ids}
    accounts = await accounts_of(stack, ids)
    handle = stack.temporal.get_workflow_handle(first["workflow_id"])
    run = (await handle.describe()).run_id
    writes = (await stack.sim.stats())["writes"]

    status, again = await post_import(stack, body)
    assert status == 200 and again == first
    assert await completed(stack, first["import_id"]) == before
    await asyncio.sleep(0)  # nothing is under way to wait for: the answer came from the stored import
    assert (await stack.sim.stats())["writes"] == writes  # no CMMS push
    for account_id in ids:
        record = await stack.sim.get_record(account_id)
        assert record is not None and record.version == versions[account_id].version == 1  # type: ignore[union-attr]
    after = await accounts_of(stack, ids)
    assert {i: (a.revision, a.updated_at) for i, a in after.items()} == {
        i: (a.revision, a.updated_at) for i, a in accounts.items()
    }
    assert (await handle.describe()).run_id == run  # no second workflow
    async with snapshot(stack.sessions) as session:
        stored = list(await session.exec(select(Import).where(Import.import_id == first["import_id"])))
    assert len(stored) == 1


async def test_accounts_the_cmms_holds_are_adopted_compared_and_repaired_never_given_a_new_password(
    stack: Stack,
) -> None:
    catalog = await seed_catalog(stack, custom_fields={"profileName": PROFILE, "domain": DOMAIN})
    same = row(catalog, password="same-Pass-001", in_cmms=True)
    drifted = row(catalog, password="drift-Pass-02", in_cmms=True)
    missing = row(catalog, password="missing-Pass3", in_cmms=True)
    fresh = row(catalog)
    await stack.sim.put_raw(
        same["account_id"], password=same["password"], imei=same["imei"], profile=PROFILE, domain=DOMAIN, version=7
    )
    # The CMMS holds the drifted account with another IMEI and profile: billing's row wins, its password stays.
    await stack.sim.put_raw(
        drifted["account_id"],
        password=drifted["password"],
        imei=random_imei(),
        profile="Residential",
        domain=DOMAIN,
        version=4,
    )
    status, answer = await post_import(stack, ndjson(same, drifted, missing, fresh))
    assert status == 202 and answer["accepted"] == 4 and answer["rejected"] == []
    progress = await completed(stack, answer["import_id"])
    assert (progress["done"], progress["failed"], progress["adopted"], progress["repaired"]) == (4, 0, 1, 2)

    kept = await stack.sim.get_record(same["account_id"])
    assert kept is not None and kept.version == 7  # compared and found the same: not pushed
    with pytest.raises(RPCError) as not_found:  # not even through its account's workflow
        await stack.temporal.get_workflow_handle(account_workflow_id(same["account_id"])).describe()
    assert not_found.value.status == RPCStatusCode.NOT_FOUND
    repaired = await stack.sim.get_record(drifted["account_id"])
    assert repaired is not None and repaired.version == 5
    assert (repaired.imei, repaired.profile) == (drifted["imei"], PROFILE)
    for adopted in (same, drifted, missing):
        record = await stack.sim.get_record(adopted["account_id"])
        assert record is not None
        assert record.password_digest == password_digest(adopted["account_id"], adopted["password"])
        device = await stack.sim.http.post("/device/v1/provision", json={"imei": adopted["imei"]})
        assert device.json()["password"] == adopted["password"]  # the phone's password, unchanged
    accounts = await accounts_of(stack, [same["account_id"]])
    assert accounts[same["account_id"]].cmms_version == 7
    assert accounts[same["account_id"]].provisioning_state == PushStatus.ok


async def test_an_import_is_found_by_its_search_attribute(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    status, answer = await post_import(stack, ndjson(row(catalog), row(catalog)))
    assert status == 202
    await completed(stack, answer["import_id"])
    description = await stack.temporal.get_workflow_handle(answer["workflow_id"]).describe()
    attributes = description.typed_search_attributes
    assert attributes.get(IMPORT_ID) == answer["import_id"]
    assert attributes.get(IMPORT_ROWS_LEFT) == 0 and attributes.get(PROVISIONING_STATE) == "completed"
    query = f'{IMPORT_ID.name} = "{answer["import_id"]}"'

    async def listed() -> list[str]:
        return [w.id async for w in stack.temporal.list_workflows(query)]

    assert await eventually(listed, what="the import listed by ImportId") == [answer["workflow_id"]]


async def test_an_import_file_may_be_larger_than_other_bodies_up_to_its_own_limit(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    padding = "\n" * (stack.settings.api.max_body_bytes + 1)  # blank lines: no rows
    status, answer = await post_import(stack, ndjson(row(catalog)) + padding.encode())
    assert status == 202 and answer["accepted"] == 1
    await completed(stack, answer["import_id"])
    # A file over IMPORT_MAX_BODY_BYTES is refused from its declared length, before a byte of it is read.
    limit = stack.settings.imports.max_body_bytes
    host, _, port = str(stack.api.base_url).removeprefix("http://").rstrip("/").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/imports HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-ndjson\r\n"
        f"Content-Length: {limit + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and str(limit).encode() in body


async def test_an_unknown_import_is_404(stack: Stack) -> None:
    response = await stack.api.get("/v1/imports/0123456789abcdef", headers=stack.admin)
    assert response.status_code == 404
