"""Service wallets as the API uses them (messaging by wallet): open, top up, charge, read the wallet and its ledger.

The ledger's rules are billing's (billing.wallets); each change here is one transaction with the outbox
record that has the account's workflow push the new messaging state, where the product lets billing
drive it. A read writes off the units expired by now first, so the balance shown is the ledger's.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from billing import wallets
from billing.db import snapshot
from billing.models import OutboxKind, WalletMovement, utcnow
from billing.wallets import Movement, MovementKind, WalletExists, WalletSnapshot
from services.outbox import Outbox, Tx


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger line as shown: `amount` is signed (a charge or an expiry takes units away)."""

    id: int
    kind: MovementKind
    amount: int
    at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    next_after: int | None  # the last entry's id when more follow


async def open_wallet(
    outbox: Outbox, account_id: str, service: str, balance: int, expires_at: datetime | None
) -> WalletSnapshot:
    """Create the account's wallet for `service` (held on its order while an accepted order will create it)."""
    try:
        async with outbox.transaction() as tx:
            opened = await wallets.open_wallet(tx.session, account_id, service, balance, expires_at, utcnow())
            if not opened.held:
                _tell(tx, opened.wallet)
            return opened.wallet
    except IntegrityError:  # opened concurrently by another request
        raise WalletExists(f"account {account_id!r} already has a {service} wallet") from None


async def get_wallet(outbox: Outbox, account_id: str, service: str) -> WalletSnapshot:
    await wallets.expire_due(outbox.sessions, account_id, service, utcnow())
    async with snapshot(outbox.sessions) as session:
        return await wallets.wallet_snapshot(session, account_id, service)


async def ledger(outbox: Outbox, account_id: str, service: str, *, limit: int, after: int | None) -> LedgerPage:
    """A page of the wallet's ledger, oldest first, after the entry `after`; the entries sum to the balance."""
    await wallets.expire_due(outbox.sessions, account_id, service, utcnow())
    async with snapshot(outbox.sessions) as session:
        rows = await wallets.movements(session, account_id, service, after=after, limit=limit + 1)
    entries = [_entry(row) for row in rows[:limit]]
    return LedgerPage(entries, entries[-1].id if len(rows) > limit else None)


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
    async with outbox.transaction() as tx:
        applied = await wallets.apply_movement(tx.session, account_id, service, movement, now)
        if applied.refusal is None and not applied.wallet.replayed:
            _tell(tx, applied.wallet)
    if applied.refusal is not None:
        raise applied.refusal  # after the commit: the units that expired stay written off
    return applied.wallet


def _tell(tx: Tx, wallet: WalletSnapshot) -> None:
    """Have the account's workflow push the messaging state, where billing drives it."""
    if wallet.push_events:
        tx.tell(OutboxKind.account, wallet.account_id)


def _entry(row: WalletMovement) -> LedgerEntry:
    kind = MovementKind(row.kind)
    sign = 1 if kind == MovementKind.top_up else -1
    return LedgerEntry(
        id=row.id or 0, kind=kind, amount=sign * row.amount, at=row.created_at, expires_at=row.expires_at
    )
