"""Secrets stay secret: SIP passwords are ciphertext in the billing database (SQLite and PostgreSQL)
yet read back as plaintext through the models, and neither workflow histories nor logs carry them."""

import asyncio
import logging
import secrets

import pytest
from sqlalchemy import text

from billing.models import Account, Order
from core.logging import StructuredFormatter
from tests.support.catalog import new_id, order_body, random_imei, seed_catalog
from tests.support.history import dump_histories
from tests.support.orders import finished, submit
from tests.support.stack import Stack


async def _raw(stack: Stack, sql: str, key: str) -> str:
    async with stack.sessions() as session:
        # A plain SQL read: what the database holds, without the column type's decryption.
        value: str = (await (await session.connection()).execute(text(sql), {"key": key})).scalar_one()
        return value


async def test_an_ordered_password_is_ciphertext_at_rest_and_absent_from_histories_and_logs(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    catalog = await seed_catalog(stack)
    password = f"At-Rest-{secrets.token_hex(6)}"
    body = order_body(catalog, password=password)
    await submit(stack, body)
    order = await finished(stack, body["order_id"])
    assert order["status"] == "completed"
    account_id = order["account_id"]

    stored = await _raw(stack, "SELECT sip_password FROM account WHERE account_id = :key", account_id)
    assert password not in stored and stored.startswith("v2:dev:")
    async with stack.sessions() as session:
        assert (await session.get_one(Account, account_id)).sip_password == password
    # The device gets it from the CMMS: provisioning read the decrypted value.
    device = await stack.sim.http.post("/device/v1/provision", json={"imei": body["account"]["imei"]})
    assert device.json()["password"] == password

    query = f"WorkflowId = 'order-{body['order_id']}' OR WorkflowId = 'account-{account_id}'"
    dump = await dump_histories(stack.temporal, query)
    for _ in range(50):  # visibility lists a run a moment after it starts
        if dump.encodings and body["order_id"] in dump.decoded and account_id in dump.decoded:
            break
        await asyncio.sleep(0.1)
        dump = await dump_histories(stack.temporal, query)
    assert set(dump.encodings) == {"binary/encrypted"}  # the UI without the codec server: ciphertext
    order_input = f'"order_id":"{body["order_id"]}"'
    assert order_input not in dump.raw  # the workflow's input is unreadable as stored…
    assert order_input in dump.decoded  # …and readable through the codec
    assert password not in dump.decoded and password not in dump.raw

    formatter = StructuredFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines and not [line for line in lines if password in line]


async def test_a_requested_password_is_ciphertext_at_rest_and_bound_to_its_column(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    password = f"Requested-{secrets.token_hex(6)}"
    order_id = new_id("ord")
    async with stack.sessions() as session, session.begin():
        session.add(
            Order(
                order_id=order_id,
                customer_id=catalog.customer_id,
                product_id=catalog.product_id,
                account_id=new_id("acc"),
                imei=random_imei(),
                requested_password=password,
                fingerprint="0" * 64,
                workflow_id=f"order-{order_id}",
            )
        )
    stored = await _raw(stack, "SELECT requested_password FROM orders WHERE order_id = :key", order_id)
    assert password not in stored
    async with stack.sessions() as session:
        assert (await session.get_one(Order, order_id)).requested_password == password

    # Ciphertext copied into another secret column does not decrypt there (the column is bound in).
    account_id = new_id("acc")
    async with stack.sessions() as session, session.begin():
        session.add(
            Account(
                account_id=account_id,
                customer_id=catalog.customer_id,
                product_id=catalog.product_id,
                sip_password="placeholder",
                created_by="test",
            )
        )
    async with stack.sessions() as session, session.begin():
        await (await session.connection()).execute(
            text("UPDATE account SET sip_password = :stolen WHERE account_id = :key"),
            {"stolen": stored, "key": account_id},
        )
    async with stack.sessions() as session:
        with pytest.raises(ValueError, match="does not authenticate"):
            await session.get_one(Account, account_id)
