"""The steps of a customer's rollout: page its accounts (billing), and sync a page through the accounts' workflows."""

from temporalio import activity
from temporalio.client import Client

from activities.account_sync import sync_accounts
from billing.db import SessionMaker
from billing.sources.base import BillingSource
from contracts.rollouts import AccountPage, AccountPageInput, SyncAccountsInput, SyncAccountsResult
from core.settings import RolloutSettings


class RolloutActivities:
    def __init__(
        self, source: BillingSource, sessions: SessionMaker, client: Client, settings: RolloutSettings, task_queue: str
    ) -> None:
        self._source = source
        self._sessions = sessions
        self._client = client
        self._settings = settings
        self._task_queue = task_queue  # the accounts' workflows'

    @activity.defn(name="list_rollout_accounts")
    async def list_rollout_accounts(self, request: AccountPageInput) -> AccountPage:
        """One page of the customer's accounts, after the previous page."""
        return await self._source.customer_page(request.customer_id, request.after_account_id, request.count_total)

    @activity.defn(name="sync_rollout_accounts")
    async def sync_rollout_accounts(self, request: SyncAccountsInput) -> SyncAccountsResult:
        """Have each account's workflow push billing's current state, `rollout_window` at a time.

        Waits until the CMMS holds every account (through outages too). Heartbeats the accounts done,
        so a retry after a lost worker carries on where it was. Safe to repeat: a push is idempotent.
        """
        await sync_accounts(self._sessions, self._client, self._task_queue, request.account_ids, self._settings.window)
        failures = await self._source.failed_among(request.account_ids)
        return SyncAccountsResult(done=len(request.account_ids) - failures, failed=failures)
