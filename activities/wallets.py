"""Bring a product's accounts into line after its messaging policy changed: one page of accounts at a time."""

import asyncio

from sqlmodel import col, select
from temporalio import activity
from temporalio.client import Client

from billing.db import SessionMaker
from billing.models import Account, AccountStatus
from contracts.wallets import ProductAccountsPage, ProductAccountsPageResult
from core.gateway import account_changed

# Signals in flight at once from one activity: enough to keep the server busy, not to flood it.
SIGNAL_CONCURRENCY = 20


class MessagingRolloutActivities:
    def __init__(self, sessions: SessionMaker, client: Client, task_queue: str) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue  # the accounts' workflows'

    @activity.defn(name="signal_product_accounts")
    async def signal_product_accounts(self, page: ProductAccountsPage) -> ProductAccountsPageResult:
        """Tell the workflow of each account on this page (by account id, after the cursor) to push its state.

        Safe to repeat: an extra signal only makes an account's workflow push the current state again.
        """
        query = select(Account.account_id).where(
            Account.product_id == page.product_id, col(Account.status) != AccountStatus.terminated
        )
        if page.after_account_id is not None:
            query = query.where(col(Account.account_id) > page.after_account_id)
        async with self._sessions() as session:
            ids = list((await session.exec(query.order_by(col(Account.account_id)).limit(page.limit))).all())
        gate = asyncio.Semaphore(SIGNAL_CONCURRENCY)

        async def signal(account_id: str) -> None:
            async with gate:
                await account_changed(self._client, self._task_queue, account_id)
                activity.heartbeat()

        await asyncio.gather(*(signal(account_id) for account_id in ids))
        last = ids[-1] if len(ids) == page.limit else None
        return ProductAccountsPageResult(signalled=len(ids), next_after_account_id=last)
