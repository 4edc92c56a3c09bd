"""The built-in billing as a `BillingSource`: this service's own tables (the embedded default)."""

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select, update

from billing.db import SessionMaker, snapshot, transaction
from billing.messaging import MESSAGING
from billing.models import Account, AccountStatus, Customer, PushStatus, utcnow
from billing.provisioning import desired_state
from billing.sources.base import Desired, Outcome
from billing.wallets import expire_due
from contracts.rollouts import AccountPage
from core.settings import ProvisioningSettings, RolloutSettings

# Accounts a customer's rollout re-provisions. A pending account is its order's to provision (and to
# roll back); a terminated one has left the CMMS.
ROLLED_OUT = (AccountStatus.active, AccountStatus.blocked)


class BuiltinSource:
    def __init__(self, sessions: SessionMaker, provisioning: ProvisioningSettings, rollouts: RolloutSettings) -> None:
        self._sessions = sessions
        self._provisioning = provisioning
        self._rollouts = rollouts

    async def expire_due(self, account_id: str, now: datetime) -> None:
        # The ledger dates the write-off at the expiry; nothing on a terminated account.
        await expire_due(self._sessions, account_id, MESSAGING, now)

    async def desired(self, account_id: str, now: datetime) -> Desired:
        async with snapshot(self._sessions) as session:
            account = await session.get(Account, account_id)
            if account is None:
                raise LookupError(f"account {account_id} does not exist")
            if account.status == AccountStatus.terminated:
                return Desired(cmms_account_id=account_id, record=None)
            state = await desired_state(session, account, self._provisioning, now=now)
        return Desired(
            cmms_account_id=account_id,
            record=state.record,
            customer_id=state.customer_id,
            wake_at=state.wake_at,
            messaging_driven=state.messaging_driven,
            customer_revision=state.customer_revision,
        )

    async def record(self, account_id: str, outcome: Outcome) -> None:
        # Plain UPDATEs, no load first: the fewer statements, the shorter SQLite's write lock is held.
        values: dict[str, Any] = {
            "provisioning_state": outcome.state,
            "last_error": outcome.error[:1000] if outcome.error else None,
            "updated_at": utcnow(),
        }
        if outcome.cmms_version is not None:
            values["cmms_version"] = outcome.cmms_version
        if outcome.messaging is not False:  # shown on the wallet (messaging by wallet)
            values["messaging_state"] = outcome.messaging
        async with transaction(self._sessions) as session:
            await session.exec(update(Account).where(col(Account.account_id) == account_id).values(values))

    async def customer_page(self, customer_id: str, after: str | None, count_total: bool) -> AccountPage:
        """Keyset pages of the customer's account ids, in id order."""
        rolled_out = (
            col(Account.customer_id) == customer_id,
            col(Account.status).in_([s.value for s in ROLLED_OUT]),
        )
        async with self._sessions() as session:
            customer = await session.get_one(Customer, customer_id)
            query = select(Account.account_id).where(*rolled_out)
            if after is not None:
                query = query.where(col(Account.account_id) > after)
            limit = self._rollouts.page_size
            ids = list(await session.exec(query.order_by(col(Account.account_id)).limit(limit)))
            total = None
            if count_total:
                total = (await session.exec(select(func.count()).select_from(Account).where(*rolled_out))).one()
        return AccountPage(
            account_ids=ids,
            next_after=ids[-1] if len(ids) == limit else None,
            total=total,
            customer_revision=customer.revision,
        )

    async def failed_among(self, account_ids: list[str]) -> int:
        async with self._sessions() as session:
            failed = await session.exec(
                select(func.count())
                .select_from(Account)
                .where(
                    col(Account.account_id).in_(account_ids),
                    col(Account.provisioning_state) == PushStatus.failed.value,
                )
            )
            return failed.one()
