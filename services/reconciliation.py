"""A reconciliation's id and progress, and its Temporal Schedule kept as the settings say (a run on
demand is started by services.delivery)."""

import dataclasses
import logging
import secrets
from datetime import UTC, datetime

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.reconciliation import (
    SCHEDULE_ID,
    SCHEDULED_WORKFLOW_ID,
    ReconciliationInput,
    ReconciliationProgress,
    reconciliation_workflow_id,
)
from contracts.search_attributes import OpsState, search_attributes
from core.settings import ReconciliationSettings
from workflows.reconciliation import ReconciliationWorkflow

log = logging.getLogger("reconciliation")


def new_reconciliation_id() -> str:
    """Sortable by when it was asked for, unique beyond that."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


async def reconciliation_progress(client: Client, reconciliation_id: str) -> ReconciliationProgress | None:
    """The reconciliation's result, or its progress while it runs; None when there is no such run."""
    handle = client.get_workflow_handle_for(ReconciliationWorkflow.run, reconciliation_workflow_id(reconciliation_id))
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()  # no worker needed to read a finished one
        progress = await handle.query(ReconciliationWorkflow.progress)
        if description.status != WorkflowExecutionStatus.RUNNING:
            progress.status = "failed"  # where it got to before it ended
        return progress
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def reconciliation_schedule(
    settings: ReconciliationSettings, *, task_queue: str, billing_source: str
) -> Schedule | None:
    """The schedule `RECONCILE_EVERY` asks for; None when it is off. A run still going when the next
    is due makes that one skipped, never a second run beside it. None beside PortaBilling too: a
    reconciliation compares the CMMS with the built-in billing."""
    if settings.every is None or billing_source != "builtin":
        return None
    action = ScheduleActionStartWorkflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(page_size=settings.page_size),
        id=SCHEDULED_WORKFLOW_ID,  # the server adds the time of each run
        task_queue=task_queue,
        typed_search_attributes=search_attributes(state=OpsState.reconciling),
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconciliation_schedule(
    client: Client, settings: ReconciliationSettings, *, task_queue: str, billing_source: str
) -> None:
    """Create the schedule, or bring an existing one in line with the settings (every worker does this
    at start-up, so it is idempotent); remove it when `RECONCILE_EVERY` is off."""
    schedule = reconciliation_schedule(settings, task_queue=task_queue, billing_source=billing_source)
    handle = client.get_schedule_handle(SCHEDULE_ID)
    if schedule is None:
        try:
            await handle.delete()
            log.info("reconciliation schedule removed (RECONCILE_EVERY is off)")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        log.info("reconciliation scheduled every %s", settings.every)
        return
    except ScheduleAlreadyRunningError:
        pass

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The settings' action, spec and policy; the state (paused by an operator, say) stays as it is.
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

    await handle.update(replace)
    log.info("reconciliation schedule updated: every %s", settings.every)
