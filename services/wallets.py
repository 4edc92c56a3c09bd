"""Service wallets (use case 4): open, top up, charge; every movement in the `wallet_movement` ledger.

Each operation is one transaction (with the outbox record that has the account's workflow push the new
messaging state, where the product lets billing drive it) that locks the wallet row first (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite's `BEGIN IMMEDIATE`, see `billing.db`, serializes writers), so concurrent charges
and top-ups leave the exact balance and a charge never takes it below zero. A movement carrying an
idempotency key is applied once: the same key with the same request answers as the first time did,
with another request it is refused.
"""

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.db import snapshot
from billing.messaging import push_events
from billing.models import Account, AccountStatus, OutboxKind, Product, Wallet, WalletMovement, utcnow
from services.errors import Conflict, Invalid, NotFound
from services.outbox import Outbox, Tx

# Balances are stored as 32-bit integers on every database.
MAX_BALANCE = 2**31 - 1


class MovementKind(StrEnum):
    open = "open"
    top_up = "top_up"
    charge = "charge"


class AccountNotFound(NotFound):
    pass


class AccountTerminated(Conflict):
    pass


class AccountPending(Conflict):
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
    messaging_state: str | None
    push_events: bool
    replayed: bool = False  # the answer to a repeated idempotency key: nothing was applied this time


@dataclass(frozen=True)
class Movement:
    """A top-up or a charge, as asked for."""

    kind: MovementKind
    amount: int
    expires_at: datetime | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What tells a repeat of this request from another request under the same key."""
        canonical = {
            "kind": self.kind.value,
            "amount": self.amount,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def open_wallet(
    outbox: Outbox, account_id: str, service: str, balance: int, expires_at: datetime | None
) -> WalletSnapshot:
    """Create the account's wallet for `service`, with an opening balance recorded in the ledger."""
    try:
        async with outbox.transaction() as tx:
            session = tx.session
            account = await session.get(Account, account_id)
            if account is None:
                raise AccountNotFound(f"account {account_id!r} does not exist")
            if account.status == AccountStatus.terminated:
                raise AccountTerminated(f"account {account_id!r} is terminated")
            if account.status == AccountStatus.pending:
                # A failed order deletes its pending account: a wallet must not hang on to it.
                raise AccountPending(f"account {account_id!r} is still being provisioned; open its wallet after")
            if await session.get(Wallet, (account_id, service)) is not None:
                raise WalletExists(f"account {account_id!r} already has a {service} wallet")
            wallet = Wallet(account_id=account_id, service=service, balance=balance, expires_at=expires_at)
            session.add(wallet)
            session.add(
                WalletMovement(
                    account_id=account_id,
                    service=service,
                    kind=MovementKind.open.value,
                    amount=balance,
                    balance_after=balance,
                    expires_at=expires_at,
                )
            )
            opened = _snapshot(wallet, await session.get_one(Product, account.product_id))
            _tell(tx, opened)
            return opened
    except IntegrityError:  # opened concurrently by another request
        raise WalletExists(f"account {account_id!r} already has a {service} wallet") from None


async def get_wallet(outbox: Outbox, account_id: str, service: str) -> WalletSnapshot:
    async with snapshot(outbox.sessions) as session:
        wallet = await session.get(Wallet, (account_id, service))
        if wallet is None:
            raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
        account = await session.get_one(Account, account_id)
        return _snapshot(wallet, await session.get_one(Product, account.product_id))


async def apply_movement(
    outbox: Outbox, account_id: str, service: str, movement: Movement, *, now: datetime | None = None
) -> WalletSnapshot:
    """Apply a top-up or a charge once; a repeated idempotency key answers what the first request did."""
    try:
        return await _apply(outbox, account_id, service, movement, now or utcnow())
    except IntegrityError:
        # The key's first request committed between our check and our insert: the movement is there now,
        # so this answers as a repeat.
        return await _apply(outbox, account_id, service, movement, now or utcnow())


async def _apply(outbox: Outbox, account_id: str, service: str, movement: Movement, now: datetime) -> WalletSnapshot:
    fingerprint = movement.fingerprint()
    async with outbox.transaction() as tx:
        session = tx.session
        # Everything that needs no lock is read first, so the wallet row is locked for as short a time as can
        # be. A repeat racing its first request past the key check is stopped by the ledger's unique key.
        account = await session.get(Account, account_id)
        if account is None:
            raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
        product = await session.get_one(Product, account.product_id)
        prior = None
        if movement.idempotency_key is not None:
            prior = await _movement_by_key(session, account_id, service, movement.idempotency_key)
            if prior is not None and prior.fingerprint != fingerprint:
                raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request")
        wallet = await session.get(Wallet, (account_id, service), with_for_update=prior is None)
        if wallet is None:
            raise WalletNotFound(f"account {account_id!r} has no {service} wallet")
        if prior is not None:
            return _as_of_movement(_snapshot(wallet, product), prior)
        if movement.kind == MovementKind.charge:
            _charge(wallet, movement.amount, now)
        else:
            _top_up(wallet, movement.amount, movement.expires_at)
        wallet.updated_at = now
        session.add(wallet)
        session.add(
            WalletMovement(
                account_id=account_id,
                service=service,
                kind=movement.kind.value,
                amount=movement.amount,
                balance_after=wallet.balance,
                expires_at=wallet.expires_at,
                idempotency_key=movement.idempotency_key,
                fingerprint=fingerprint,
            )
        )
        applied = _snapshot(wallet, product)
        _tell(tx, applied)
        return applied


def _tell(tx: Tx, wallet: WalletSnapshot) -> None:
    """Have the account's workflow push the messaging state, where billing drives it."""
    if wallet.push_events:
        tx.tell(OutboxKind.account, wallet.account_id)


def _charge(wallet: Wallet, amount: int, now: datetime) -> None:
    if wallet.expires_at is not None and wallet.expires_at <= now:
        raise WalletExpired(f"the wallet expired at {wallet.expires_at.isoformat()}; nothing was charged")
    if amount > wallet.balance:
        raise InsufficientBalance(f"the balance is {wallet.balance}, less than {amount}; nothing was charged")
    wallet.balance -= amount


def _top_up(wallet: Wallet, amount: int, expires_at: datetime | None) -> None:
    if wallet.balance + amount > MAX_BALANCE:
        raise BalanceLimit(f"the balance would exceed {MAX_BALANCE}; nothing was added")
    wallet.balance += amount
    # A top-up may extend the expiry, never shorten it; a wallet without an expiry keeps none.
    if expires_at is not None and wallet.expires_at is not None and expires_at > wallet.expires_at:
        wallet.expires_at = expires_at


async def _movement_by_key(session: AsyncSession, account_id: str, service: str, key: str) -> WalletMovement | None:
    query = select(WalletMovement).where(
        WalletMovement.account_id == account_id,
        WalletMovement.service == service,
        WalletMovement.idempotency_key == key,
    )
    return (await session.exec(query)).first()


def _snapshot(wallet: Wallet, product: Product) -> WalletSnapshot:
    return WalletSnapshot(
        account_id=wallet.account_id,
        service=wallet.service,
        balance=wallet.balance,
        expires_at=wallet.expires_at,
        messaging_state=wallet.messaging_state,
        push_events=push_events(product.service_policies),
    )


def _as_of_movement(snapshot: WalletSnapshot, movement: WalletMovement) -> WalletSnapshot:
    """The answer a repeated request gets: the balance and expiry its first application left."""
    return replace(snapshot, balance=movement.balance_after, expires_at=movement.expires_at, replayed=True)
