"""Service wallets over HTTP and at the ledger, on SQLite and PostgreSQL: balances stay exact, retries apply once."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, func, select

from billing.db import SessionMaker, async_url, make_engine, make_sessionmaker
from billing.messaging import MESSAGING
from billing.models import AccountStatus, WalletMovement, utcnow
from services.outbox import Outbox
from services.wallets import InsufficientBalance, Movement, MovementKind, apply_movement, get_wallet, open_wallet
from tests.support.catalog import seed_catalog
from tests.support.messaging import billing_only_account, move, wallet_view
from tests.support.messaging import open_wallet as open_wallet_api
from tests.support.stack import Stack


async def _account(stack: Stack) -> str:
    return await billing_only_account(stack.sessions, await seed_catalog(stack))


async def _movements(stack: Stack, account_id: str) -> int:
    async with stack.sessions() as session:
        query = select(func.count()).select_from(WalletMovement).where(col(WalletMovement.account_id) == account_id)
        return (await session.exec(query)).one()


async def test_a_wallet_opens_takes_top_ups_and_charges_and_never_goes_below_zero(stack: Stack) -> None:
    account_id = await _account(stack)
    expires = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    opened = await open_wallet_api(stack, account_id, 10, expires_at=expires.isoformat())
    assert opened["balance"] == 10 and opened["push_events"] is False and opened["messaging"] is None

    topped = await move(stack, account_id, "top-ups", 5, expires_at=(expires + timedelta(days=1)).isoformat())
    assert topped.status_code == 200 and topped.json()["balance"] == 15
    shorter = await move(stack, account_id, "top-ups", 1, expires_at=(expires - timedelta(days=1)).isoformat())
    assert shorter.json()["expires_at"] == topped.json()["expires_at"]  # a top-up never shortens the expiry

    charge_path = f"/v1/accounts/{account_id}/wallets/messaging/charges"
    charged = await stack.api.post(charge_path, json={"amount": 16}, headers=stack.cmms)  # the CMMS may charge
    assert charged.status_code == 200 and charged.json()["balance"] == 0
    too_much = await stack.api.post(charge_path, json={"amount": 1}, headers=stack.cmms)
    assert too_much.status_code == 409 and too_much.headers["content-type"].startswith("application/problem+json")
    view = await wallet_view(stack, account_id)
    assert view["balance"] == 0 and view["expires_at"] == topped.json()["expires_at"]
    assert await _movements(stack, account_id) == 4  # open, two top-ups, one charge: the refusal left nothing

    top_up_path = f"/v1/accounts/{account_id}/wallets/messaging/top-ups"
    assert (await stack.api.post(top_up_path, json={"amount": 1}, headers=stack.cmms)).status_code == 403
    assert (await stack.api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=stack.cmms)).status_code == 403
    assert (await stack.api.post(charge_path, json={"amount": 1})).status_code == 401


async def test_bad_wallet_requests_are_refused_and_change_nothing(stack: Stack) -> None:
    account_id = await _account(stack)
    wallets = f"/v1/accounts/{account_id}/wallets"
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    for body in (
        {"service": "voice", "balance": 1},
        {"service": "messaging", "balance": -1},
        {"service": "messaging", "balance": "5"},
        {"service": "messaging", "balance": 5, "expires_at": past},
        {"service": "messaging", "balance": 5, "expires_at": "2030-01-01T00:00:00"},  # no time zone
        {"service": "messaging", "balance": 2**31},
        {"service": "messaging", "balance": 5, "colour": "red"},
    ):
        response = await stack.api.post(wallets, json=body, headers=stack.admin)
        assert response.status_code == 422, (body, response.text)
    missing = await stack.api.get(f"{wallets}/messaging", headers=stack.admin)
    assert missing.status_code == 404

    await open_wallet_api(stack, account_id, 5)
    again = await stack.api.post(wallets, json={"service": "messaging", "balance": 5}, headers=stack.admin)
    assert again.status_code == 409
    for amount in (0, -3, 1.5, "2", None):
        assert (await move(stack, account_id, "charges", amount)).status_code == 422  # type: ignore[arg-type]
    assert (await move(stack, account_id, "top-ups", 1, expires_at=past)).status_code == 422
    assert (await move(stack, account_id, "top-ups", 2**31 - 5)).status_code == 409  # past the 32-bit balance
    unknown = await stack.api.post(
        "/v1/accounts/nobody/wallets", json={"service": "messaging", "balance": 1}, headers=stack.admin
    )
    assert unknown.status_code == 404
    assert (await move(stack, "nobody", "charges", 1)).status_code == 404
    pending = await billing_only_account(stack.sessions, await seed_catalog(stack), AccountStatus.pending)
    early = await stack.api.post(
        f"/v1/accounts/{pending}/wallets", json={"service": "messaging", "balance": 1}, headers=stack.admin
    )
    assert early.status_code == 409 and "provisioned" in early.json()["detail"]
    assert (await wallet_view(stack, account_id))["balance"] == 5
    assert await _movements(stack, account_id) == 1


async def test_an_idempotency_key_applies_a_retried_call_once(stack: Stack) -> None:
    account_id = await _account(stack)
    await open_wallet_api(stack, account_id, 100)
    headers = stack.admin | {"Idempotency-Key": "charge-1"}
    path = f"/v1/accounts/{account_id}/wallets/messaging/charges"
    # Retries racing each other, then a late one: one charge, and every answer is the first one's.
    answers = await asyncio.gather(*(stack.api.post(path, json={"amount": 7}, headers=headers) for _ in range(10)))
    late = await stack.api.post(path, json={"amount": 7}, headers=headers)
    assert {(a.status_code, a.json()["balance"]) for a in [*answers, late]} == {(200, 93)}
    assert (await wallet_view(stack, account_id))["balance"] == 93

    other = await stack.api.post(path, json={"amount": 8}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    as_top_up = await move(stack, account_id, "top-ups", 7, expires_at=None)
    assert as_top_up.status_code == 200  # no key: a new top-up
    same_key_top_up = await stack.api.post(
        f"/v1/accounts/{account_id}/wallets/messaging/top-ups", json={"amount": 7}, headers=headers
    )
    assert same_key_top_up.status_code == 422  # the key belongs to the charge
    assert (await wallet_view(stack, account_id))["balance"] == 100
    assert await _movements(stack, account_id) == 3


@asynccontextmanager
async def _patient_sessions(database_url: str) -> AsyncIterator[SessionMaker]:
    """The service's engine, but waiting as long as it takes for a pooled connection: a thousand operations
    queue for the pool at once here, and what this test checks is the balance, not how long they queue."""
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        await engine.dispose()
        engine = create_async_engine(async_url(database_url), pool_size=10, max_overflow=20, pool_timeout=600)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_a_thousand_concurrent_charges_and_top_ups_leave_the_exact_balance(stack: Stack) -> None:
    account_id = await _account(stack)
    drained = await _account(stack)
    async with _patient_sessions(stack.settings.database_url) as patient:
        sessions = Outbox(patient, stack.temporal, stack.settings)
        await open_wallet(sessions, account_id, MESSAGING, 1000, None)
        charge = Movement(MovementKind.charge, 1)
        top_up = Movement(MovementKind.top_up, 2)
        operations = [charge] * 600 + [top_up] * 400
        await asyncio.gather(*(apply_movement(sessions, account_id, MESSAGING, op) for op in operations))
        assert (await get_wallet(sessions, account_id, MESSAGING)).balance == 1000 - 600 + 800
        assert await _movements(stack, account_id) == 1001

        # More charges than the balance can pay: exactly the balance is charged, never below zero.
        await open_wallet(sessions, drained, MESSAGING, 50, None)
        results = await asyncio.gather(
            *(apply_movement(sessions, drained, MESSAGING, charge) for _ in range(120)), return_exceptions=True
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 50
        assert all(isinstance(r, InsufficientBalance) for r in results if isinstance(r, BaseException))
        assert (await get_wallet(sessions, drained, MESSAGING)).balance == 0
