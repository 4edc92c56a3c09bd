"""The steps of a customer's rollout: page its accounts (billing), and sync a page through the accounts' workflows."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError

from billing.db import SessionMaker
from billing.models import Account, AccountStatus, Customer, ProvisioningState
from contracts.rollouts import AccountPage, AccountPageInput, SyncAccountsInput, SyncAccountsResult
from core.settings import Settings
from services.delivery import sync_account

# Accounts a rollout re-provisions. A pending account is its order's to provision (and to roll back);
# a terminated one has left the CMMS.
ROLLED_OUT = (AccountStatus.active, AccountStatus.blocked)
# How long to wait for one account's sync before asking again. An update can be lost to an account
# workflow that is just ending (the account was terminated meanwhile); asking again is harmless.
SYNC_PATIENCE_SECONDS = 60.0
# Heartbeat at least this often, so a rollout waiting out a CMMS outage is not taken for a dead worker.
HEARTBEAT_EVERY_SECONDS = 2.0


class _Synced(BaseModel):
    """Heartbeat details: the accounts of the page already synced, so a retry skips them."""

    account_ids: list[str]


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
        synced = set(_previously_synced())
        window = asyncio.Semaphore(self._settings.rollout_window)

        async def sync(account_id: str) -> None:
            async with window:
                while not await self._synced_once(account_id):
                    pass
            synced.add(account_id)

        with _heartbeating(synced):
            async with asyncio.TaskGroup() as group:
                for account_id in request.account_ids:
                    if account_id not in synced:
                        group.create_task(sync(account_id))
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

    async def _synced_once(self, account_id: str) -> bool:
        """Ask the account's workflow to sync; False when no answer came in time and it should be asked again."""
        patience = asyncio.timeout(SYNC_PATIENCE_SECONDS)
        try:
            async with patience:
                await sync_account(self._client, self._settings, account_id)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            if not patience.expired():  # the activity itself is cancelled (worker shutting down, say)
                raise asyncio.CancelledError from err
            async with self._sessions() as session:
                account = await session.get(Account, account_id)
            # Terminated meanwhile: its workflow removes it from the CMMS without being asked.
            return account is None or account.status == AccountStatus.terminated
        return True


def _previously_synced() -> list[str]:
    details = activity.info().heartbeat_details
    return _Synced.model_validate(details[0]).account_ids if details else []


@contextmanager
def _heartbeating(synced: set[str]) -> Iterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat(_Synced(account_ids=sorted(synced)))
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()
