"""Use case 4's decision: should the CMMS let an account send messages, and until when?

Only the account's *product* decides whether billing drives messaging at all (its messaging service
policy with `push_events`); a policy stored on the account itself is shown but never considered.
Messaging is usable while the account's messaging wallet exists, holds a positive balance and has
not expired: the current state, never a replay of top-ups and charges.
"""

from datetime import datetime
from typing import Any, NamedTuple

from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import Account, MessagingState, Product, Wallet

MESSAGING = "messaging"


class DesiredMessaging(NamedTuple):
    """`enabled=None`: billing does not drive this account's messaging, the CMMS keeps its value.

    `wake_at`: when the answer will change by itself (the wallet expires), for a durable timer.
    """

    enabled: bool | None
    wake_at: datetime | None


def push_events(service_policies: dict[str, Any]) -> bool:
    """Whether a product's service policies tell billing to push messaging suspensions and resumptions."""
    policy = service_policies.get(MESSAGING)
    return isinstance(policy, dict) and policy.get("push_events") is True


def wallet_usable(wallet: Wallet | None, now: datetime) -> bool:
    """A wallet pays for messaging while it holds a positive balance and has not expired."""
    if wallet is None or wallet.balance <= 0:
        return False
    return wallet.expires_at is None or wallet.expires_at > now


def messaging_state(enabled: bool) -> MessagingState:
    return MessagingState.active if enabled else MessagingState.suspended


async def desired_messaging(session: AsyncSession, account: Account, now: datetime) -> DesiredMessaging:
    """What the CMMS should hold for `account`'s messaging at `now`, and when that changes by itself."""
    product = await session.get_one(Product, account.product_id)
    if not push_events(product.service_policies):
        return DesiredMessaging(enabled=None, wake_at=None)
    wallet = await session.get(Wallet, (account.account_id, MESSAGING))
    enabled = wallet_usable(wallet, now)
    expires_at = wallet.expires_at if wallet is not None else None
    wake_at = expires_at if enabled and expires_at is not None else None
    return DesiredMessaging(enabled=enabled, wake_at=wake_at)
