"""The wake sweep: an idle account's workflow ends even when something is due later by the clock (a wallet
lot expiring), so the worker looks, every ACCOUNT_WAKE_SWEEP_SECONDS, for the accounts due within the
idle-timer horizon and starts their workflows, each waiting (a timer) until its wake-up. The sweep runs
more often than the horizon is long, so every wake-up is seen by a sweep before it is due.

Idempotent: an account whose workflow runs is left alone (it keeps its own timer), so several workers
sweeping at once, or a sweep repeated, start each account's workflow once. Built-in billing only: it is
the billing whose due times can be queried (beside PortaBilling, accounts keep their timers).
"""

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client

from billing.db import SessionMaker, snapshot
from billing.models import utcnow
from billing.wallets import accounts_due
from core import gateway
from core.temporal import is_transient

log = logging.getLogger(__name__)

# Accounts started per sweep at most; the rest (the soonest come first) wait for the next sweep.
SWEEP_LIMIT = 10_000


async def wake_due_accounts(sessions: SessionMaker, client: Client, task_queue: str, horizon: timedelta) -> int:
    """Start the workflow of every account due within `horizon` that has none running; how many were due."""
    async with snapshot(sessions) as session:
        due = await accounts_due(session, utcnow() + horizon, SWEEP_LIMIT)
    for account_id, wake_at in due:
        await gateway.wake_account(client, task_queue, account_id, wake_at)
    return len(due)


async def wake_due_accounts_forever(
    sessions: SessionMaker, client: Client, task_queue: str, horizon: timedelta, every: float
) -> None:
    """`wake_due_accounts` every `every` seconds; a round that fails (Temporal or the database away) is
    logged and tried again at the next."""
    while True:
        try:
            due = await wake_due_accounts(sessions, client, task_queue, horizon)
            if due:
                log.info("wake sweep: %d accounts due within %s", due, horizon)
        except Exception as err:
            if not is_transient(err):
                log.exception("wake sweep failed")
            else:
                log.warning("wake sweep postponed: %s", type(err).__name__)
        await asyncio.sleep(every)
