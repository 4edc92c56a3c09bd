"""Service wallets over HTTP and at the ledger, on SQLite and PostgreSQL: balances stay exact, retries apply once."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, func, select

from billing.db import SessionMaker, async_url, make_engine, make_sessionmaker, transaction
from billing.messaging import MESSAGING
from billing.models import Account, AccountStatus, WalletLot, WalletMovement, utcnow
from billing.sources.builtin import BuiltinSource
from billing.wallets import AccountTerminated, InsufficientBalance, Movement, MovementKind, WalletExpired, expire_due
from services.accounts import terminate_account
from services.outbox import Outbox
from services.wallets import LedgerEntry, apply_movement, get_wallet, open_wallet
from services.wallets import ledger as ledger_page
from tests.support.catalog import Catalog, create, new_id, seed_catalog
from tests.support.messaging import billing_only_account, ledger, move, new_idempotency_key, wallet_view
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
    cmms = stack.cmms | new_idempotency_key()
    charged = await stack.api.post(charge_path, json={"amount": 16}, headers=cmms)  # the CMMS may charge
    assert charged.status_code == 200 and charged.json()["balance"] == 0
    too_much = await stack.api.post(charge_path, json={"amount": 1}, headers=stack.cmms | new_idempotency_key())
    assert too_much.status_code == 409 and too_much.headers["content-type"].startswith("application/problem+json")
    view = await wallet_view(stack, account_id)
    assert view["balance"] == 0 and view["expires_at"] == topped.json()["expires_at"]
    assert await _movements(stack, account_id) == 4  # open, two top-ups, one charge: the refusal left nothing

    top_up_path = f"/v1/accounts/{account_id}/wallets/messaging/top-ups"
    assert (await stack.api.post(top_up_path, json={"amount": 1}, headers=cmms)).status_code == 403
    assert (await stack.api.get(f"/v1/accounts/{account_id}/wallets/messaging", headers=stack.cmms)).status_code == 403
    assert (await stack.api.post(charge_path, json={"amount": 1}, headers=new_idempotency_key())).status_code == 401


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
    assert (await move(stack, account_id, "top-ups", 1, valid_days=0)).status_code == 422
    assert (await move(stack, account_id, "top-ups", 1, valid_days=1.5)).status_code == 422
    both = await move(
        stack, account_id, "top-ups", 1, valid_days=3, expires_at=(utcnow() + timedelta(days=1)).isoformat()
    )
    assert both.status_code == 422
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
    assert as_top_up.status_code == 200  # another key: a new top-up
    same_key_top_up = await stack.api.post(
        f"/v1/accounts/{account_id}/wallets/messaging/top-ups", json={"amount": 7}, headers=headers
    )
    assert same_key_top_up.status_code == 422  # the key belongs to the charge
    assert (await wallet_view(stack, account_id))["balance"] == 100
    assert await _movements(stack, account_id) == 3


async def test_a_money_movement_without_an_idempotency_key_is_refused_before_its_body(stack: Stack) -> None:
    account_id = await _account(stack)
    await open_wallet_api(stack, account_id, 10)
    for kind, headers in (("charges", stack.cmms), ("charges", stack.admin), ("top-ups", stack.admin)):
        path = f"/v1/accounts/{account_id}/wallets/messaging/{kind}"
        # The same movement sent twice without a key: refused both times, nothing moves.
        for _ in range(2):
            refused = await stack.api.post(path, json={"amount": 2}, headers=headers)
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "Idempotency-Key" in refused.json()["detail"]
        # Before the body: an invalid body without a key is still told of the key first.
        assert (await stack.api.post(path, json={"amount": -1}, headers=headers)).status_code == 400
        blank = await stack.api.post(path, json={"amount": 2}, headers=headers | {"Idempotency-Key": ""})
        assert blank.status_code == 400
        too_long = await stack.api.post(path, json={"amount": 2}, headers=headers | {"Idempotency-Key": "k" * 201})
        assert too_long.status_code == 400
        # The caller's key and role are still checked first.
        assert (await stack.api.post(path, json={"amount": 2})).status_code == 401
    assert (await wallet_view(stack, account_id))["balance"] == 10
    assert await _movements(stack, account_id) == 1  # the opening only


async def _ledger(outbox: Outbox, account_id: str) -> list[LedgerEntry]:
    """Every entry, page after page, as the service hands them to the API."""
    entries: list[LedgerEntry] = []
    after = None
    while True:
        page = await ledger_page(outbox, account_id, MESSAGING, limit=500, after=after)
        entries += page.entries
        if page.next_after is None:
            return entries
        after = page.next_after


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
    async with _patient_sessions(stack.settings.database.url) as patient:
        sessions = Outbox(patient, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
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
        for wallet in (account_id, drained):
            entries = await _ledger(sessions, wallet)
            assert sum(entry.amount for entry in entries) == (await get_wallet(sessions, wallet, MESSAGING)).balance


async def test_units_expiring_under_concurrent_movements_leave_a_ledger_that_sums_to_the_balance(stack: Stack) -> None:
    account_id = await _account(stack)
    async with _patient_sessions(stack.settings.database.url) as patient:
        outbox = Outbox(patient, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
        await open_wallet(outbox, account_id, MESSAGING, 0, None)
        expiry = utcnow() + timedelta(seconds=1.5)
        short, lasting, charge = (
            Movement(MovementKind.top_up, 3, expires_at=expiry),
            Movement(MovementKind.top_up, 2),
            Movement(MovementKind.charge, 2),
        )

        async def later(operation: Callable[[], Awaitable[object]]) -> None:
            await asyncio.sleep(random.uniform(0, 3))  # before, around and after the expiry
            with contextlib.suppress(InsufficientBalance, WalletExpired):
                await operation()

        def moving(movement: Movement) -> Callable[[], Awaitable[object]]:
            return lambda: apply_movement(outbox, account_id, MESSAGING, movement)

        def sweep() -> Awaitable[object]:
            return expire_due(patient, account_id, MESSAGING, utcnow())

        operations = [moving(short)] * 60 + [moving(lasting)] * 40 + [moving(charge)] * 100 + [sweep] * 40
        await asyncio.gather(*(later(operation) for operation in operations))
        await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()))
        balance = (await get_wallet(outbox, account_id, MESSAGING)).balance
        entries = await _ledger(outbox, account_id)
    assert sum(entry.amount for entry in entries) == balance
    expired = [entry for entry in entries if entry.kind == MovementKind.expiry]
    assert expired and all(entry.at == expiry for entry in expired)
    # Each short top-up's leftover expired once at most: never more units written off than they brought.
    assert -sum(entry.amount for entry in expired) <= 3 * 60 and len(expired) <= 60
    async with stack.sessions() as session:
        lots = (await session.exec(select(WalletLot).where(WalletLot.account_id == account_id))).all()
    assert sum(lot.remaining for lot in lots) == balance and all(lot.expires_at is None for lot in lots)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_each_top_up_lasts_its_own_lifetime_and_charges_take_the_units_expiring_first(stack: Stack) -> None:
    account_id = await _account(stack)
    outbox = Outbox(stack.sessions, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
    await open_wallet(outbox, account_id, MESSAGING, 0, None)
    start = utcnow() - timedelta(days=20)  # the top-ups were bought 20 days ago
    for amount, days in ((20, 30), (10, 5), (7, None)):
        top_up = Movement(MovementKind.top_up, amount, valid_days=days)
        await apply_movement(outbox, account_id, MESSAGING, top_up, now=start)
    # A charge on day 1 takes from the 5-day top-up, the one expiring first.
    await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.charge, 4), now=start + timedelta(days=1))

    # Day 20: the 5-day units left (6) expired on day 5; the 30-day and the unlimited ones are live.
    view = await wallet_view(stack, account_id)
    assert view["balance"] == 27 and view["expires_at"] is None  # some units never expire
    entries = await ledger(stack, account_id)
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("top_up", 20),
        ("top_up", 10),
        ("top_up", 7),
        ("charge", -4),
        ("expiry", -6),
    ]
    expiry = entries[-1]
    assert _at(expiry["at"]) == _at(expiry["expires_at"]) == _at(entries[1]["expires_at"])
    assert abs(_at(expiry["at"]) - (start + timedelta(days=5))) < timedelta(seconds=1)
    assert sum(e["amount"] for e in entries) == view["balance"]
    assert await expire_due(stack.sessions, account_id, MESSAGING, utcnow()) == 0  # written once
    assert len(await ledger(stack, account_id)) == 5

    # A charge takes the 30-day units before the ones that never expire.
    await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.charge, 25))
    async with stack.sessions() as session:
        lots = (await session.exec(select(WalletLot).where(WalletLot.account_id == account_id))).all()
    assert [(lot.remaining, lot.expires_at) for lot in lots] == [(2, None)]


async def test_expired_units_are_gone_and_a_top_up_after_expiry_starts_a_new_balance(stack: Stack) -> None:
    account_id = await _account(stack)
    outbox = Outbox(stack.sessions, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
    await open_wallet(outbox, account_id, MESSAGING, 0, None)
    long_ago = utcnow() - timedelta(days=3)
    await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.top_up, 5, valid_days=1), now=long_ago)
    # The wallet expired two days ago: a charge is refused, and finds the units expired (written off for good).
    refused = await move(stack, account_id, "charges", 1)
    assert refused.status_code == 409 and "expired" in refused.json()["detail"]
    assert [(e["kind"], e["amount"]) for e in await ledger(stack, account_id)] == [("top_up", 5), ("expiry", -5)]

    soon = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    resumed = await move(stack, account_id, "top-ups", 3, expires_at=soon.isoformat())
    assert resumed.status_code == 200
    assert resumed.json()["balance"] == 3 and _at(resumed.json()["expires_at"]) == soon  # not 8: nothing came back
    entries = await ledger(stack, account_id)
    assert (entries[-1]["kind"], entries[-1]["amount"], _at(entries[-1]["expires_at"])) == ("top_up", 3, soon)
    assert sum(e["amount"] for e in entries) == 3


async def test_reading_the_desired_state_writes_nothing_the_expiry_step_writes_the_expired_units_off(
    stack: Stack,
) -> None:
    account_id = await _account(stack)
    outbox = Outbox(stack.sessions, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
    await open_wallet(outbox, account_id, MESSAGING, 0, None)
    long_ago = utcnow() - timedelta(days=3)
    await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.top_up, 5, valid_days=1), now=long_ago)
    source = BuiltinSource(stack.sessions, stack.settings.provisioning, stack.settings.rollouts)

    await source.desired(account_id, utcnow())
    assert await _movements(stack, account_id) == 1  # the top-up only: a read wrote no expiry

    await source.expire_due(account_id, utcnow())
    assert await _movements(stack, account_id) == 2
    async with stack.sessions() as session:
        assert (await session.exec(select(WalletLot).where(WalletLot.account_id == account_id))).all() == []


async def test_a_top_up_without_a_lifetime_takes_the_products_default(stack: Stack) -> None:
    catalog = await seed_catalog(stack)
    product_id = new_id("prod")
    policies = {"messaging": {"push_events": False, "initial_wallet": {"amount": 0, "valid_days": 7}}}
    await create(stack, "/v1/products", {"product_id": product_id, "name": "P", "service_policies": policies})
    account_id = await billing_only_account(stack.sessions, Catalog(catalog.customer_id, product_id))
    await open_wallet_api(stack, account_id, 0)
    before = utcnow()
    topped = (await move(stack, account_id, "top-ups", 4)).json()
    assert before + timedelta(days=7) <= _at(topped["expires_at"]) <= utcnow() + timedelta(days=7)
    # Changing one setting of the policy keeps the others: the default validity stays.
    patch = {"service_policies": {"messaging": {"push_events": False}}}
    changed = await stack.api.patch(f"/v1/products/{product_id}", json=patch, headers=stack.admin)
    assert changed.json()["service_policies"] == policies and changed.json()["workflow_id"] is None
    own = (await move(stack, account_id, "top-ups", 1, valid_days=30)).json()
    assert _at(own["expires_at"]) >= before + timedelta(days=30)  # the latest live lot's

    plain = await _account(stack)  # a product without a default: units that never expire
    await open_wallet_api(stack, plain, 0)
    assert (await move(stack, plain, "top-ups", 4)).json()["expires_at"] is None


async def test_a_terminated_accounts_wallet_never_changes_again(stack: Stack) -> None:
    account_id = await _account(stack)
    outbox = Outbox(stack.sessions, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
    await open_wallet(outbox, account_id, MESSAGING, 0, None)
    await apply_movement(
        outbox, account_id, MESSAGING, Movement(MovementKind.top_up, 5, valid_days=1), now=utcnow() - timedelta(days=2)
    )
    async with transaction(stack.sessions) as session:
        account = await session.get_one(Account, account_id)
        account.status = AccountStatus.terminated
        session.add(account)
    for kind in ("top-ups", "charges"):
        refused = await move(stack, account_id, kind, 1)
        assert refused.status_code == 409 and "terminated" in refused.json()["detail"], refused.text
    again = await stack.api.post(
        f"/v1/accounts/{account_id}/wallets", json={"service": "messaging", "balance": 1}, headers=stack.admin
    )
    assert again.status_code == 409 and "terminated" in again.json()["detail"]
    assert await expire_due(stack.sessions, account_id, MESSAGING, utcnow()) == 0  # not even an expiry
    assert [e["kind"] for e in await ledger(stack, account_id)] == ["top_up"]
    assert (await wallet_view(stack, account_id))["balance"] == 5


async def test_the_ledger_pages_and_refuses_bad_paging(stack: Stack) -> None:
    account_id = await _account(stack)
    await open_wallet_api(stack, account_id, 1)
    for _ in range(4):
        await move(stack, account_id, "top-ups", 1)
    path = f"/v1/accounts/{account_id}/wallets/messaging/movements"
    first = (await stack.api.get(path, params={"limit": 2}, headers=stack.admin)).json()
    assert len(first["items"]) == 2 and first["next"]
    assert len(await ledger(stack, account_id, limit=2)) == 5
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "x"}, {"limit": "many"}):
        response = await stack.api.get(path, params=params, headers=stack.admin)
        assert response.status_code == 422, params
    assert (await stack.api.get(path, headers=stack.cmms)).status_code == 403
    assert (
        await stack.api.get("/v1/accounts/nobody/wallets/messaging/movements", headers=stack.admin)
    ).status_code == 404


async def test_no_movement_lands_after_the_account_is_terminated(stack: Stack) -> None:
    account_id = await _account(stack)
    async with _patient_sessions(stack.settings.database.url) as patient:
        outbox = Outbox(patient, stack.temporal, stack.settings.outbox, stack.settings.temporal.task_queue)
        await open_wallet(outbox, account_id, MESSAGING, 1000, None)
        terminated_at: list[float] = []
        outcomes: list[tuple[float, bool]] = []

        async def charge() -> None:
            await asyncio.sleep(random.uniform(0, 0.3))
            try:
                await apply_movement(outbox, account_id, MESSAGING, Movement(MovementKind.charge, 1))
                outcomes.append((time.monotonic(), True))
            except AccountTerminated:
                outcomes.append((time.monotonic(), False))

        async def terminate() -> None:
            await asyncio.sleep(0.15)
            await terminate_account(outbox, account_id, "test")
            terminated_at.append(time.monotonic())

        await asyncio.gather(terminate(), *(charge() for _ in range(150)))
    charged = [at for at, applied in outcomes if applied]
    assert charged and len(charged) < 150  # some before, some refused after
    assert all(at <= terminated_at[0] for at in charged)  # none committed after the termination did
    assert await _movements(stack, account_id) == 1 + len(charged)
    assert (await wallet_view(stack, account_id))["balance"] == 1000 - len(charged)
