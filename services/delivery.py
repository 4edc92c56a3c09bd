"""The one place that starts, signals or updates a workflow for a billing change.

Every way in uses these: the outbox relay (services.outbox) for what the API commits, and the
activities that fan a change out to many accounts. Each call is idempotent at the workflow, so a
record delivered twice (at least once is all the outbox promises) changes nothing that matters:
- an order's workflow id is its order id, started once (a second start finds it and does nothing);
- an account's workflow pushes billing's *current* state whenever told, so an extra `changed` only
  pushes the same state again;
- a customer's rollout keeps the newest revision it heard of, so a repeated revision is a no-op;
- a product's messaging rollout tells every account to push its current state: starting it again
  re-tells them, which changes nothing in the CMMS.
"""

import contextlib
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from billing.models import Order
from contracts.orders import MvnoOrderInput
from contracts.provisioning import AccountSyncResult, AccountWorkflowInput, account_workflow_id
from contracts.reconciliation import ReconciliationInput, reconciliation_workflow_id
from contracts.rollouts import CustomerRolloutInput, RolloutChange, rollout_workflow_id
from contracts.search_attributes import OpsState, search_attributes
from contracts.wallets import MessagingRolloutInput, messaging_rollout_workflow_id
from core.settings import Settings

# The workflows by their registered names: activities deliver through this module too, and the
# workflow modules import the activities, so naming the classes here would make an import cycle.
# (tests/unit/test_delivery_names.py checks the names against the classes.)
ORDER_WORKFLOW = "MvnoOrderWorkflow"
ACCOUNT_WORKFLOW = "AccountWorkflow"
ROLLOUT_WORKFLOW = "CustomerRolloutWorkflow"
MESSAGING_ROLLOUT_WORKFLOW = "MessagingRolloutWorkflow"
RECONCILIATION_WORKFLOW = "ReconciliationWorkflow"
SYNC_UPDATE = "sync"

# One call to Temporal may take this long before it counts as failed (and is tried again later): a
# hanging server must not hold a delivery, or the API process's shutdown, for the SDK's default minute.
RPC_TIMEOUT = timedelta(seconds=10)

# The signal's name, as the workflows declare it (signal-with-start takes a name).
CHANGED_SIGNAL = "changed"


async def start_order(client: Client, settings: Settings, order: Order) -> str:
    """Start the order's workflow; one already started or finished is left as it is."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            ORDER_WORKFLOW,
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
            rpc_timeout=RPC_TIMEOUT,
        )
    return order.workflow_id


async def account_changed(client: Client, settings: Settings, account_id: str) -> str:
    """Signal (starting it if needed) the account's workflow; returns its id. Does not wait for the CMMS."""
    workflow_id = account_workflow_id(account_id)
    await client.start_workflow(
        ACCOUNT_WORKFLOW,
        AccountWorkflowInput(account_id=account_id),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.pushing, account_id=account_id),
        start_signal=CHANGED_SIGNAL,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def sync_account(client: Client, settings: Settings, account_id: str) -> AccountSyncResult:
    """Push billing's current state to the CMMS through the account's workflow, and wait until it is there."""
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        ACCOUNT_WORKFLOW,
        AccountWorkflowInput(account_id=account_id),
        id=account_workflow_id(account_id),
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.pushing, account_id=account_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    result: AccountSyncResult = await client.execute_update_with_start_workflow(
        SYNC_UPDATE, start_workflow_operation=start, result_type=AccountSyncResult
    )
    return result


async def customer_changed(client: Client, settings: Settings, customer_id: str, revision: int) -> str:
    """Have every account of the customer re-provisioned with `revision`'s values; returns the rollout's id.

    Signal-with-start: a rollout already running for the customer starts its pass again for the newer
    revision, otherwise a new one starts.
    """
    workflow_id = rollout_workflow_id(customer_id)
    await client.start_workflow(
        ROLLOUT_WORKFLOW,
        CustomerRolloutInput(customer_id=customer_id, revision=revision),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.rolling_out, customer_id=customer_id),
        start_signal=CHANGED_SIGNAL,
        start_signal_args=[RolloutChange(revision=revision)],
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def product_policy_changed(client: Client, settings: Settings, product_id: str) -> str:
    """Bring every account of the product into line with its messaging policy; returns the rollout's id."""
    workflow_id = messaging_rollout_workflow_id(product_id)
    await client.start_workflow(
        MESSAGING_ROLLOUT_WORKFLOW,
        MessagingRolloutInput(product_id=product_id),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.rolling_out),
        # A newer change starts again from the first account rather than racing the older rollout.
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def start_reconciliation(client: Client, settings: Settings, reconciliation_id: str) -> str:
    """Start a reconciliation now (an operator's request, answered only once Temporal has it); returns
    its workflow id."""
    workflow_id = reconciliation_workflow_id(reconciliation_id)
    await client.start_workflow(
        RECONCILIATION_WORKFLOW,
        ReconciliationInput(page_size=settings.reconcile_page_size),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.reconciling),
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id
