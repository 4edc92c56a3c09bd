"""Start (or redirect) a customer's rollout, and read its progress: the API's way in."""

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from contracts.rollouts import CustomerRolloutInput, RolloutChange, RolloutProgress, rollout_workflow_id
from contracts.search_attributes import OpsState, search_attributes
from core.settings import Settings
from workflows.customer_rollout import CustomerRolloutWorkflow

# The signal's name, as the workflow declares it (signal-with-start takes a name).
CHANGED_SIGNAL = "changed"


async def customer_changed(client: Client, settings: Settings, customer_id: str, revision: int) -> str:
    """Have every account of the customer re-provisioned with `revision`'s values; returns the rollout's id.

    Signal-with-start: a rollout already running for the customer starts its pass again for the newer
    revision, otherwise a new one starts.
    """
    workflow_id = rollout_workflow_id(customer_id)
    await client.start_workflow(
        CustomerRolloutWorkflow.run,
        CustomerRolloutInput(customer_id=customer_id, revision=revision),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.rolling_out, customer_id=customer_id),
        start_signal=CHANGED_SIGNAL,
        start_signal_args=[RolloutChange(revision=revision)],
    )
    return workflow_id


async def rollout_progress(client: Client, customer_id: str) -> RolloutProgress | None:
    """The customer's latest rollout, running or finished; None when it never had one."""
    handle = client.get_workflow_handle_for(CustomerRolloutWorkflow.run, rollout_workflow_id(customer_id))
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()  # no worker needed to read a finished one
        return await handle.query(CustomerRolloutWorkflow.progress)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
