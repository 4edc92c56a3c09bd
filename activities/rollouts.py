"""The steps of a customer's rollout: page its accounts (billing), and sync a page through the accounts' workflows."""

from sqlalchemy import func
from sqlmodel import col, select
from temporalio import activity
from temporalio.client import Client

from activities.account_sync import sync_accounts
from billing.db import SessionMaker
from billing.models import Account, AccountStatus, Customer, ProvisioningState
from contracts.rollouts import AccountPage, AccountPageInput, SyncAccountsInput, SyncAccountsResult
from core.settings import Settings

# Accounts a rollout re-provisions. A pending account is its order's to provision (and to roll back);
# a terminated one has left the CMMS.
ROLLED_OUT = (AccountStatus.active, AccountStatus.blocked)


class RolloutActivities:
    def __init__(self, sessions: SessionMaker, client: Client, settings: Settings) -> None:
        self._sessions = sessions
        self._client = client
        self._settings = settings

    @activity.defn(name="list_rollout_accounts")
    async def list_rollout_accounts(self, request: AccountPageInput) -> AccountPage:
        """One page of the customer's account ids, in id order, after `after_account_id`."""
        rolled_out = (
            col(Account.customer_id) == request.customer_id,
            col(Account.status).in_([s.value for s in ROLLED_OUT]),
        )
        async with self._sessions() as session:
            customer = await session.get_one(Customer, request.customer_id)
            query = select(Account.account_id).where(*rolled_out)
            if request.after_account_id is not None:
                query = query.where(col(Account.account_id) > request.after_account_id)
            limit = self._settings.rollout_page_size
            ids = list(await session.exec(query.order_by(col(Account.account_id)).limit(limit)))
            total = None
            if request.count_total:
                total = (await session.exec(select(func.count()).select_from(Account).where(*rolled_out))).one()
        return AccountPage(
            account_ids=ids,
            next_after=ids[-1] if len(ids) == limit else None,
            total=total,
            customer_revision=customer.revision,
        )

    @activity.defn(name="sync_rollout_accounts")
    async def sync_rollout_accounts(self, request: SyncAccountsInput) -> SyncAccountsResult:
        """Have each account's workflow push billing's current state, `rollout_window` at a time.

        Waits until the CMMS holds every account (through outages too). Heartbeats the accounts done,
        so a retry after a lost worker carries on where it was. Safe to repeat: a push is idempotent.
        """
        await sync_accounts(
            self._sessions, self._client, self._settings, request.account_ids, self._settings.rollout_window
        )
        async with self._sessions() as session:
            failed = await session.exec(
                select(func.count())
                .select_from(Account)
                .where(
                    col(Account.account_id).in_(request.account_ids),
                    col(Account.provisioning_state) == ProvisioningState.failed.value,
                )
            )
            failures = failed.one()
        return SyncAccountsResult(done=len(request.account_ids) - failures, failed=failures)
