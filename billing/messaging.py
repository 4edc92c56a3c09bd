"""Messaging by wallet, the decision: should the CMMS let an account send messages, and until when?

Only the account's *product* decides whether billing drives messaging at all (its messaging service
policy with `push_events`); a policy stored on the account itself is shown but never considered.
Messaging is usable while the account's messaging wallet holds live units: units of a top-up
(a lot) that are unspent and have not reached that top-up's expiry. The current state, never a replay
of top-ups and charges.

When the product's policy is turned off, billing hands messaging back to the CMMS: an account billing
had driven is pushed once more with messaging enabled, and from then on its messaging is left alone.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import Account, MessagingState, Product, WalletLot

MESSAGING = "messaging"


class DesiredMessaging(NamedTuple):
    """`enabled=None`: billing does not drive this account's messaging, the CMMS keeps its value.

    `driven`: billing drives it (the product's policy is on); `enabled=True` without `driven` is the one
    push that hands messaging back to the CMMS. `wake_at`: when the answer, or the wallet's balance,
    will change by itself (the next top-up lot expiring), for a durable timer.
    """

    enabled: bool | None
    wake_at: datetime | None
    driven: bool


@dataclass(frozen=True)
class InitialWallet:
    """What a product gives a new account's messaging wallet: units, valid for `valid_days` (None: forever)."""

    amount: int
    valid_days: int | None


def messaging_policy(service_policies: dict[str, Any]) -> dict[str, Any]:
    policy = service_policies.get(MESSAGING)
    return policy if isinstance(policy, dict) else {}


def push_events(service_policies: dict[str, Any]) -> bool:
    """Whether a product's service policies tell billing to push messaging suspensions and resumptions."""
    return messaging_policy(service_policies).get("push_events") is True


def initial_wallet(service_policies: dict[str, Any]) -> InitialWallet | None:
    """The messaging wallet a product opens with each new account, if it gives one."""
    given = messaging_policy(service_policies).get("initial_wallet")
    if not isinstance(given, dict):
        return None
    return InitialWallet(amount=int(given.get("amount", 0)), valid_days=given.get("valid_days"))


def starting_messaging(
    service_policies: dict[str, Any], held_wallet: dict[str, Any] | None = None
) -> MessagingState | None:
    """How messaging starts for a new account of the product, opened with `held_wallet` if one was given
    before the account existed: None where billing does not drive it."""
    if not push_events(service_policies):
        return None
    wallet = initial_wallet(service_policies)
    units = held_wallet["balance"] if held_wallet is not None else wallet.amount if wallet is not None else 0
    return MessagingState.active if units > 0 else MessagingState.suspended


def messaging_state(enabled: bool) -> MessagingState:
    return MessagingState.active if enabled else MessagingState.suspended


def lot_order(lot: WalletLot) -> tuple[bool, datetime, int]:
    """Charges take the units expiring first; units that never expire last; then the older top-up."""
    return (lot.expires_at is None, lot.expires_at or datetime.max.replace(tzinfo=UTC), lot.id or 0)


async def wallet_lots(session: AsyncSession, account_id: str, service: str) -> list[WalletLot]:
    """The wallet's live lots, in the order charges consume them."""
    query = select(WalletLot).where(WalletLot.account_id == account_id, WalletLot.service == service)
    lots = list((await session.exec(query.order_by(col(WalletLot.id)))).all())
    return sorted(lots, key=lot_order)


async def desired_messaging(session: AsyncSession, account: Account, now: datetime) -> DesiredMessaging:
    """What the CMMS should hold for `account`'s messaging at `now`, and when that changes by itself."""
    product = await session.get_one(Product, account.product_id)
    if not push_events(product.service_policies):
        handed_back = True if account.messaging_state is not None else None
        return DesiredMessaging(enabled=handed_back, wake_at=None, driven=False)
    live = [lot for lot in await wallet_lots(session, account.account_id, MESSAGING) if _alive(lot.expires_at, now)]
    expiries = [lot.expires_at for lot in live if lot.expires_at is not None]
    return DesiredMessaging(enabled=bool(live), wake_at=min(expiries, default=None), driven=True)


def _alive(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now
