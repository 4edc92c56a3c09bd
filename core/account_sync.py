"""Tell an account's workflow that billing changed: the one way API handlers and activities do it."""

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from contracts.provisioning import AccountSyncResult, AccountWorkflowInput, account_workflow_id
from contracts.search_attributes import OpsState, search_attributes
from core.settings import Settings
from workflows.account import AccountWorkflow


async def account_changed(client: Client, settings: Settings, account_id: str) -> str:
    """Signal (starting it if needed) the account's workflow; returns its id. Does not wait for the CMMS."""
    workflow_id = account_workflow_id(account_id)
    await client.start_workflow(
        AccountWorkflow.run,
        AccountWorkflowInput(account_id=account_id),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.pushing, account_id=account_id),
        start_signal="changed",
    )
    return workflow_id


async def sync_account(client: Client, settings: Settings, account_id: str) -> AccountSyncResult:
    """Push billing's current state to the CMMS through the account's workflow, and wait until it is there."""
    start = WithStartWorkflowOperation(
        AccountWorkflow.run,
        AccountWorkflowInput(account_id=account_id),
        id=account_workflow_id(account_id),
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.pushing, account_id=account_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return await client.execute_update_with_start_workflow(AccountWorkflow.sync, start_workflow_operation=start)
