"""Have many accounts' own workflows push billing's current state to the CMMS, from inside an activity:
a bounded window at a time, each waited for (through CMMS outages too), heartbeating the accounts done
so that a retry after a lost worker carries on where it was. Safe to repeat: a push is idempotent.
A customer's rollout and a reconciliation's repairs both go this way."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError

from billing.db import SessionMaker, snapshot
from billing.models import Account, AccountStatus
from core.gateway import sync_account

# How long to wait for one account's sync before asking again. An update can be lost to an account
# workflow that is just ending (the account was terminated meanwhile); asking again is harmless.
SYNC_PATIENCE_SECONDS = 60.0
# Heartbeat at least this often, so an activity waiting out a CMMS outage is not taken for a dead worker.
HEARTBEAT_EVERY_SECONDS = 2.0


class Done(BaseModel):
    """Heartbeat details: the accounts already dealt with, so a retry skips them."""

    account_ids: list[str]


async def sync_accounts(
    sessions: SessionMaker, client: Client, task_queue: str, account_ids: list[str], window: int
) -> None:
    """Sync every account of `account_ids`, `window` at a time, and return once the CMMS holds each."""
    done = set(previously_done())
    gate = asyncio.Semaphore(window)

    async def sync(account_id: str) -> None:
        async with gate:
            while not await _synced_once(sessions, client, task_queue, account_id):
                pass
        done.add(account_id)

    with heartbeating(done):
        async with asyncio.TaskGroup() as group:
            for account_id in account_ids:
                if account_id not in done:
                    group.create_task(sync(account_id))


def previously_done() -> list[str]:
    details = activity.info().heartbeat_details
    return Done.model_validate(details[0]).account_ids if details else []


@contextmanager
def heartbeating(done: set[str] | None = None) -> Iterator[None]:
    """Heartbeat while the block runs, with the accounts `done` so far when given."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*([Done(account_ids=sorted(done))] if done is not None else []))
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()


async def _synced_once(sessions: SessionMaker, client: Client, task_queue: str, account_id: str) -> bool:
    """Ask the account's workflow to sync; False when no answer came in time and it should be asked again."""
    patience = asyncio.timeout(SYNC_PATIENCE_SECONDS)
    try:
        async with patience:
            await sync_account(client, task_queue, account_id)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        if not patience.expired():  # the activity itself is cancelled (worker shutting down, say)
            raise asyncio.CancelledError from err
        async with snapshot(sessions) as session:
            account = await session.get(Account, account_id)
        # Terminated meanwhile: its workflow removes it from the CMMS without being asked.
        return account is None or account.status == AccountStatus.terminated
    return True
