"""Starting an order's workflow: just after `POST /v1/orders` answers, and later for any order left unstarted.

The POST answers 202 once the order is stored; its workflow starts right after the response, so the
website never waits on Temporal. An order whose start did not happen (Temporal unreachable then, or
the API stopped in between) stays `accepted` with no workflow: every API process looks for such
orders every ORDER_START_RETRY_SECONDS and starts them. Starting is idempotent (the workflow id is
the order's), so several API processes doing it at once start each order once.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import col, select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from billing.db import SessionMaker, snapshot
from billing.models import Order, OrderStatus, utcnow
from contracts.orders import MvnoOrderInput
from contracts.search_attributes import ORDER_ID, OpsState, search_attributes
from core.settings import Settings
from core.temporal import is_transient
from workflows.mvno_order import MvnoOrderWorkflow

log = logging.getLogger(__name__)

# Orders looked at per round, and per visibility query.
_ROUND = 500
_QUERY = 100


async def start_order_workflow(temporal: Client, settings: Settings, order: Order) -> bool:
    """Start the order's workflow (already started or finished: nothing happens). False when Temporal
    could not be reached: the order stays `accepted` and a later round starts it."""
    try:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await temporal.start_workflow(
                MvnoOrderWorkflow.run,
                MvnoOrderInput(order_id=order.order_id),
                id=order.workflow_id,
                task_queue=settings.temporal_task_queue,
                search_attributes=search_attributes(
                    state=OpsState.provisioning,
                    order_id=order.order_id,
                    customer_id=order.customer_id,
                    account_id=order.account_id,
                ),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
    except RPCError as err:
        if is_transient(err):
            log.warning("order %s stored, its workflow not started yet (Temporal: %s)", order.order_id, err.status.name)
        else:  # the same on every round until an operator fixes what Temporal refuses
            log.error(
                "order %s stored, Temporal refuses to start its workflow (%s: %s)",
                order.order_id,
                err.status.name,
                err.message,
            )
        return False
    return True


async def start_unstarted_orders(
    temporal: Client, sessions: SessionMaker, settings: Settings, *, accepted_before: datetime
) -> int:
    """Start the workflow of every order still `accepted` since before `accepted_before` that has none;
    returns how many were started."""
    async with snapshot(sessions) as session:
        query = (
            select(Order)
            .where(col(Order.status) == OrderStatus.accepted, col(Order.created_at) < accepted_before)
            .order_by(col(Order.created_at))
            .limit(_ROUND)
        )
        waiting = (await session.exec(query)).all()
    if not waiting:
        return 0
    # An accepted order may have its workflow already, waiting for a worker: ask Temporal which do,
    # a query per hundred orders, rather than one start call per order on every round.
    have_workflow = await _orders_with_workflows(temporal, [order.order_id for order in waiting])
    started = 0
    for order in waiting:
        if order.order_id not in have_workflow and await start_order_workflow(temporal, settings, order):
            log.info("order %s: its workflow started late", order.order_id)
            started += 1
    return started


async def _orders_with_workflows(temporal: Client, order_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for first in range(0, len(order_ids), _QUERY):
        # Order ids are resource ids (letters, digits, `._:@-`): nothing in them needs quoting.
        listed = ", ".join(f"'{order_id}'" for order_id in order_ids[first : first + _QUERY])
        query = f"WorkflowType = '{MvnoOrderWorkflow.__name__}' AND OrderId IN ({listed})"
        async for execution in temporal.list_workflows(query):
            if (order_id := execution.typed_search_attributes.get(ORDER_ID)) is not None:
                found.add(order_id)
    return found


async def keep_starting_unstarted_orders(temporal: Client, sessions: SessionMaker, settings: Settings) -> None:
    """Every ORDER_START_RETRY_SECONDS, start the orders left unstarted for at least that long; runs
    for the API's lifetime."""
    interval = timedelta(seconds=settings.order_start_retry_seconds)
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await start_unstarted_orders(temporal, sessions, settings, accepted_before=utcnow() - interval)
        except Exception as err:  # whatever went wrong (Temporal or the database away), the next round tries again
            log.warning("looking for unstarted orders failed: %s", type(err).__name__)
