"""A service wallet's ledger: open, top up, charge, expire; every movement in the `wallet_movement` ledger.

Modelled on PortaBilling's service wallets (docs/wallets.md): a top-up brings units with their own
lifetime (e.g. 100 units for 10 days), kept as a *lot*; the wallet's balance is the sum of its live
lots and its expiry the latest of theirs; charges take the units expiring first. Units that reach their
lot's expiry are gone for good, with an `expiry` entry in the ledger dated when they expired; that entry
is written by whatever first finds them expired (the provisioning step before it reads the account,
any movement, a read of the wallet or its ledger), under the wallet's lock, so exactly once. A top-up
after everything expired starts a new balance. So the ledger explains every balance: the sum of its
entries (top-ups less charges and expiries) is the balance.

Every change runs in its caller's transaction (the API's carries the outbox record that has the
account's workflow push the new messaging state) and locks the wallet row (`FOR UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE`, see `billing.db`, serializes writers) and then the account against
termination (`FOR SHARE`), so concurrent charges and top-ups leave the exact balance and a charge never
takes it below zero. A movement carrying an idempotency key is applied once: the same key with the same
request answers as the first time did, with another request it is refused. A terminated account's
wallet never changes again.
"""

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.db import SessionMaker, snapshot, transaction
from billing.errors import Conflict, Invalid, NotFound, ServiceError
from billing.messaging import MESSAGING, initial_wallet, lot_order, push_events, wallet_lots
from billing.models import (
    Account,
    AccountStatus,
    Order,
    OrderStatus,
    OutboxKind,
    OutboxRecord,
    Product,
    Wallet,
    WalletLot,
    WalletMovement,
    utcnow,
)
from core.settings import OutboxSettings

# Balances are stored as 32-bit integers on every database.
MAX_BALANCE = 2**31 - 1
# Taken on the account row by every wallet change (after the wallet's own lock): a termination (FOR NO
# KEY UPDATE) waits for the change under way, and a change after it sees the account terminated.
_ACCOUNT_SHARE: dict[str, Any] = {"read": True}


class MovementKind(StrEnum):
    top_up = "top_up"
    charge = "charge"
    expiry = "expiry"


class AccountNotFound(NotFound):
    pass


class AccountTerminated(Conflict):
    pass


class WalletNotFound(NotFound):
    pass


class WalletExists(Conflict):
    pass


class InsufficientBalance(Conflict):
    pass


class WalletExpired(Conflict):
    pass


class BalanceLimit(Conflict):
    pass


class IdempotencyKeyReused(Invalid):
    """The idempotency key was already used for a different request (422, as the IETF Idempotency-Key
    draft answers a reused key)."""


@dataclass(frozen=True)
class WalletSnapshot:
    """A wallet as an operation left it; `push_events`: whether its product lets billing drive the CMMS."""

    account_id: str
    service: str
    balance: int
    expires_at: datetime | None
    messaging_state: str | None  # as the CMMS last confirmed it, while billing drives it
    push_events: bool
    replayed: bool = False  # the answer to a repeated idempotency key: nothing was applied this time


@dataclass(frozen=True)
class Movement:
    """A top-up or a charge, as asked for. A top-up's units expire at `expires_at`, else `valid_days` from
    now, else after the product's default validity (its initial wallet's), else never."""

    kind: MovementKind
    amount: int
    expires_at: datetime | None = None
    idempotency_key: str | None = None
    valid_days: int | None = None

    def fingerprint(self) -> str:
        """What tells a repeat of this request from another request under the same key."""
        canonical: dict[str, Any] = {
            "kind": self.kind.value,
            "amount": self.amount,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }
        if self.valid_days is not None:
            canonical["valid_days"] = self.valid_days
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class Opened(NamedTuple):
    """A wallet `open_wallet` opened; `held`: kept on the order that will create the account, so there
    is no account's workflow to tell yet."""

    wallet: WalletSnapshot
    held: bool = False


class Applied(NamedTuple):
    """A movement as `apply_movement` left the wallet. `refusal`: the movement itself was refused, while
    units that had expired were written off (commit, then raise it); `replayed` answers say so in `wallet`."""

    wallet: WalletSnapshot
    refusal: ServiceError | None = None


async def open_wallet(
    session: AsyncSession, account_id: str, service: str, balance: int, expires_at: datetime | None, now: datetime
) -> Opened:
    """Create the account's wallet for `service`, its opening balance one top-up lot lasting until `expires_at`.

    An account an accepted order will create does not exist yet: the wallet is held on the order and
    opened with the account (unless the product opens one itself). A wallet opened concurrently by another
    transaction surfaces as an IntegrityError when the caller commits."""
    account = await session.get(Account, account_id, with_for_update=_ACCOUNT_SHARE)
    if account is None:
        order = await _awaiting_order(session, account_id)
        # Its workflow may have created the account while this waited for the order's lock.
        account = await session.get(Account, account_id, with_for_update=_ACCOUNT_SHARE)
        if account is None:
            if order is None:
                raise AccountNotFound(f"account {account_id!r} does not exist")
            return Opened(await _hold_on_order(session, order, service, balance, expires_at), held=True)
    _check_open(account)
    if await session.get(Wallet, (account_id, service)) is not None:
        raise WalletExists(f"account {account_id!r} already has a {service} wallet")
    wallet = await _create(session, account_id, service, balance, expires_at, now)
    return Opened(_snapshot(wallet, account, await session.get_one(Product, account.product_id)))


async def open_initial_wallet(
    session: AsyncSession, account_id: str, product: Product, now: datetime, held: dict[str, Any] | None = None
) -> datetime | None:
    """Open a new account's messaging wallet, in the transaction that creates the account: the one `held` on
    its order, else the one its product gives (`initial_wallet`), else none. Nothing if it has one.

    Returns when the opened units expire (None: no wallet, or units that never expire): whoever creates the
    account hands it to its workflow, which wakes then."""
    if await session.get(Wallet, (account_id, MESSAGING)) is not None:
        return None
    if held is not None:
        expires_at = datetime.fromisoformat(held["expires_at"]) if held.get("expires_at") else None
        balance = int(held["balance"])
    else:
        given = initial_wallet(product.service_policies)
        if given is None:
            return None
        balance, expires_at = given.amount, _valid_until(now, given.valid_days)
    await session.flush()  # the account first: nothing else orders the inserts by their foreign keys
    await _create(session, account_id, MESSAGING, balance, expires_at, now)
    return expires_at if balance > 0 else None


async def open_product_wallet(session: AsyncSession, account_id: str, product_id: str, outbox: OutboxSettings) -> None:
    """`open_initial_wallet` for an account just added to `session` under `product_id` (a signup's). Units that
    expire are watched by the account's workflow: the outbox relay tells it a lease after the commit, by
    when the account has normally gone live."""
    now = utcnow()
    if await open_initial_wallet(session, account_id, await session.get_one(Product, product_id), now) is not None:
        later = now + timedelta(seconds=outbox.lease_seconds)
        session.add(OutboxRecord(kind=OutboxKind.account, target=account_id, available_at=later))


async def discard_account(session: AsyncSession, account_id: str, origin: str) -> None:
    """Roll back an account that never went live: deleted with its wallets if `origin` created it and it is
    still pending. The wallets are locked before the account, in the order every wallet change takes them."""
    await session.exec(select(Wallet.service).where(Wallet.account_id == account_id).with_for_update())
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None or account.created_by != origin or account.status != AccountStatus.pending:
        return
    await forget_wallets(session, account_id)
    await session.delete(account)


async def forget_wallets(session: AsyncSession, account_id: str) -> None:
    """Delete the account's wallets with their lots and ledgers: an account rolled back, or starting afresh."""
    for table in (WalletMovement, WalletLot, Wallet):
        await session.exec(delete(table).where(col(table.account_id) == account_id))


async def wallet_snapshot(session: AsyncSession, account_id: str, service: str) -> WalletSnapshot:
    """The wallet as it stands (expired units are written off by `expire_due`, not here)."""
    wallet = await session.get(Wallet, (account_id, service))
    if wallet is None:
        raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
    account = await session.get_one(Account, account_id)
    return _snapshot(wallet, account, await session.get_one(Product, account.product_id))


async def movements(
    session: AsyncSession, account_id: str, service: str, *, after: int | None, limit: int
) -> list[WalletMovement]:
    """Up to `limit` of the wallet's ledger rows, oldest first, after the row `after`."""
    if await session.get(Wallet, (account_id, service)) is None:
        raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
    query = select(WalletMovement).where(WalletMovement.account_id == account_id, WalletMovement.service == service)
    if after is not None:
        query = query.where(col(WalletMovement.id) > after)
    return list((await session.exec(query.order_by(col(WalletMovement.id)).limit(limit))).all())


async def accounts_due(session: AsyncSession, before: datetime, limit: int) -> list[tuple[str, datetime]]:
    """Accounts with a wallet lot expiring by `before` (or already expired, not yet written off), each with
    its first such expiry, soonest first; at most `limit` (index `ix_wallet_lot_expires_at`)."""
    due = func.min(WalletLot.expires_at)
    query = (
        select(WalletLot.account_id, due)
        .where(col(WalletLot.expires_at).is_not(None), col(WalletLot.expires_at) <= before)
        .group_by(col(WalletLot.account_id))
        .order_by(due)
        .limit(limit)
    )
    rows = (await session.exec(query)).all()
    return [(account_id, expires_at) for account_id, expires_at in rows if expires_at is not None]


async def expire_due(sessions: SessionMaker, account_id: str, service: str, now: datetime) -> int:
    """Write off the units whose lots expired by `now` (an `expiry` entry each); returns how many.

    Safe to repeat and to race: the lots are read under the wallet's lock and deleted as they expire.
    Nothing on a terminated account: its ledger is closed."""
    async with snapshot(sessions) as session:
        due = (
            select(func.count())
            .select_from(WalletLot)
            .where(WalletLot.account_id == account_id, WalletLot.service == service, col(WalletLot.expires_at) <= now)
        )
        if (await session.exec(due)).one() == 0:
            return 0
    async with transaction(sessions) as session:
        wallet = await session.get(Wallet, (account_id, service), with_for_update=True)
        account = await session.get(Account, account_id, with_for_update=_ACCOUNT_SHARE)
        if account is None or account.status == AccountStatus.terminated or wallet is None:
            return 0
        _, expired = await _expire(session, wallet, await wallet_lots(session, account_id, service), now)
        return expired


async def apply_movement(
    session: AsyncSession, account_id: str, service: str, movement: Movement, now: datetime
) -> Applied:
    """Apply a top-up or a charge once; a repeated idempotency key answers what the first request did.

    A repeat racing its first request past the key check is stopped by the ledger's unique key (an
    IntegrityError when the caller commits: trying again then answers as a repeat)."""
    fingerprint = movement.fingerprint()
    # Everything that needs no lock is read first, so the wallet row is locked for as short a time as can
    # be.
    account = await session.get(Account, account_id)
    if account is None:
        raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
    _check_open(account)
    product = await session.get_one(Product, account.product_id)
    prior = None
    if movement.idempotency_key is not None:
        prior = await _movement_by_key(session, account_id, service, movement.idempotency_key)
        if prior is not None and prior.fingerprint != fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request")
    wallet = await session.get(Wallet, (account_id, service), with_for_update=prior is None)
    if wallet is None and movement.kind == MovementKind.top_up:
        # An account whose product gave it no wallet is topped up like any other: paying is enough.
        wallet = await _create(session, account_id, service, 0, None, now)
    if wallet is None:
        raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
    # The account is share-locked after the wallet: changes queue on the wallet first, so a termination
    # waits for the one change holding the wallet, not for a whole burst of them.
    _check_open(await session.get_one(Account, account_id, with_for_update=_ACCOUNT_SHARE, populate_existing=True))
    if prior is not None:
        return Applied(replace(_snapshot(wallet, account, product), balance=prior.balance_after, replayed=True))
    lots, expired = await _expire(session, wallet, await wallet_lots(session, account_id, service), now)
    try:
        if movement.kind == MovementKind.charge:
            await _charge(session, wallet, lots, movement.amount, now, movement.idempotency_key, fingerprint)
        else:
            lifetime = _top_up_expiry(movement, product, now)
            _top_up(session, wallet, lots, movement.amount, lifetime, now, movement.idempotency_key, fingerprint)
    except ServiceError as err:
        if not expired:
            raise
        # The units that expired stay written off; the movement itself is refused.
        return Applied(_snapshot(wallet, account, product), refusal=err)
    return Applied(_snapshot(wallet, account, product))


def _check_open(account: Account) -> None:
    if account.status == AccountStatus.terminated:
        raise AccountTerminated(f"account {account.account_id!r} is terminated: its wallets no longer change")


def _top_up_expiry(movement: Movement, product: Product, now: datetime) -> datetime | None:
    if movement.expires_at is not None:
        return movement.expires_at
    if movement.valid_days is not None:
        return _valid_until(now, movement.valid_days)
    default = initial_wallet(product.service_policies)
    return _valid_until(now, default.valid_days) if default is not None else None


def _valid_until(now: datetime, valid_days: int | None) -> datetime | None:
    return now + timedelta(days=valid_days) if valid_days is not None else None


async def _create(
    session: AsyncSession, account_id: str, service: str, balance: int, expires_at: datetime | None, now: datetime
) -> Wallet:
    """A new wallet; its opening balance is its first top-up (none for an empty wallet)."""
    wallet = Wallet(account_id=account_id, service=service, balance=0, expires_at=expires_at, created_at=now)
    session.add(wallet)
    if balance > 0:
        _top_up(session, wallet, [], balance, expires_at, now, None, None)
    return wallet


async def _awaiting_order(session: AsyncSession, account_id: str) -> Order | None:
    """The accepted order that will create `account_id`, locked against its workflow creating the account."""
    query = select(Order).where(Order.account_id == account_id, Order.status == OrderStatus.accepted)
    return (await session.exec(query.with_for_update())).first()


async def _hold_on_order(
    session: AsyncSession, order: Order, service: str, balance: int, expires_at: datetime | None
) -> WalletSnapshot:
    product = await session.get_one(Product, order.product_id)
    if order.held_wallet is not None or initial_wallet(product.service_policies) is not None:
        raise WalletExists(f"account {order.account_id!r} gets its {service} wallet with the account")
    order.held_wallet = {"balance": balance, "expires_at": expires_at.isoformat() if expires_at else None}
    order.updated_at = utcnow()
    session.add(order)
    return WalletSnapshot(
        account_id=order.account_id,
        service=service,
        balance=balance,
        expires_at=expires_at,
        messaging_state=None,
        push_events=push_events(product.service_policies),
    )


async def _expire(
    session: AsyncSession, wallet: Wallet, lots: list[WalletLot], now: datetime
) -> tuple[list[WalletLot], int]:
    """Write off the lots expired by `now`, each with an `expiry` entry dated at its expiry; returns the lots
    still live (in charging order) and the units written off."""
    live: list[WalletLot] = []
    expired = 0
    for lot in sorted(lots, key=lot_order):
        if lot.expires_at is None or lot.expires_at > now:
            live.append(lot)
            continue
        wallet.balance -= lot.remaining
        expired += lot.remaining
        _record(session, wallet, MovementKind.expiry, lot.remaining, lot.expires_at, lot.expires_at)
        await session.delete(lot)
    if expired:
        _set_expiry(wallet, live)
        wallet.updated_at = now
        session.add(wallet)
    return live, expired


async def _charge(
    session: AsyncSession,
    wallet: Wallet,
    lots: list[WalletLot],
    amount: int,
    now: datetime,
    key: str | None,
    fingerprint: str | None,
) -> None:
    if amount > wallet.balance:
        if wallet.balance == 0 and wallet.expires_at is not None and wallet.expires_at <= now:
            raise WalletExpired(f"the wallet expired at {wallet.expires_at.isoformat()}; nothing was charged")
        raise InsufficientBalance(f"the balance is {wallet.balance}, less than {amount}; nothing was charged")
    left = amount
    for lot in lots:  # the units expiring first go first
        take = min(left, lot.remaining)
        lot.remaining -= take
        left -= take
        if lot.remaining == 0:
            await session.delete(lot)
        else:
            session.add(lot)
        if left == 0:
            break
    wallet.balance -= amount
    _set_expiry(wallet, [lot for lot in lots if lot.remaining > 0])
    wallet.updated_at = now
    session.add(wallet)
    _record(session, wallet, MovementKind.charge, amount, now, None, key, fingerprint)


def _top_up(
    session: AsyncSession,
    wallet: Wallet,
    lots: list[WalletLot],
    amount: int,
    expires_at: datetime | None,
    now: datetime,
    key: str | None,
    fingerprint: str | None,
) -> None:
    if wallet.balance + amount > MAX_BALANCE:
        raise BalanceLimit(f"the balance would exceed {MAX_BALANCE}; nothing was added")
    lot = WalletLot(
        account_id=wallet.account_id, service=wallet.service, remaining=amount, expires_at=expires_at, created_at=now
    )
    session.add(lot)
    wallet.balance += amount
    _set_expiry(wallet, [*lots, lot])
    wallet.updated_at = now
    session.add(wallet)
    _record(session, wallet, MovementKind.top_up, amount, now, expires_at, key, fingerprint)


def _set_expiry(wallet: Wallet, live: list[WalletLot]) -> None:
    """The latest expiry of the live lots (None if some never expire); with none live, the last one stays."""
    if not live:
        return
    expiries = [lot.expires_at for lot in live]
    wallet.expires_at = None if None in expiries else max(e for e in expiries if e is not None)


def _record(
    session: AsyncSession,
    wallet: Wallet,
    kind: MovementKind,
    amount: int,
    at: datetime,
    expires_at: datetime | None,
    key: str | None = None,
    fingerprint: str | None = None,
) -> None:
    session.add(
        WalletMovement(
            account_id=wallet.account_id,
            service=wallet.service,
            kind=kind.value,
            amount=amount,
            balance_after=wallet.balance,
            expires_at=expires_at,
            idempotency_key=key,
            fingerprint=fingerprint,
            created_at=at,
        )
    )


async def _movement_by_key(session: AsyncSession, account_id: str, service: str, key: str) -> WalletMovement | None:
    query = select(WalletMovement).where(
        WalletMovement.account_id == account_id,
        WalletMovement.service == service,
        WalletMovement.idempotency_key == key,
    )
    return (await session.exec(query)).first()


def _snapshot(wallet: Wallet, account: Account, product: Product) -> WalletSnapshot:
    return WalletSnapshot(
        account_id=wallet.account_id,
        service=wallet.service,
        balance=wallet.balance,
        expires_at=wallet.expires_at,
        messaging_state=account.messaging_state,
        push_events=push_events(product.service_policies),
    )
