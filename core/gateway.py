"""The one place that calls Temporal as a client: it starts, signals, updates and queries workflows, lists
and counts them, reads their histories, and keeps the reconciliation Schedule. The API's services and
the activities both go through it; it takes ids, the task queue and the contracts' inputs, never billing rows.

Workflows, signals, updates and queries are named by the refs of contracts.workflows (the names the
workflow classes register), each call typed by its ref's input and result.

Starts and signals are idempotent at the workflow, so a change delivered twice (at least once is all the
outbox promises) changes nothing that matters:
- an order's workflow id is its order id, started once (a second start finds it and does nothing);
- an account's workflow pushes billing's *current* state whenever told, so an extra `changed` only
  pushes the same state again;
- a customer's rollout keeps the newest revision it heard of, so a repeated revision is a no-op;
- a product's messaging rollout tells every account to push its current state: starting it again
  re-tells them, which changes nothing in the CMMS.
"""

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
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
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.imports import ImportWorkflowInput, import_workflow_id
from contracts.orders import MvnoOrderInput, order_workflow_id
from contracts.provisioning import AccountSyncResult, AccountWorkflowInput, account_workflow_id
from contracts.reconciliation import (
    SCHEDULE_ID,
    SCHEDULED_WORKFLOW_ID,
    DeletionCeiling,
    OrphanCursor,
    ReconciliationInput,
    ReconciliationProgress,
    reconciliation_workflow_id,
)
from contracts.rollouts import CustomerRolloutInput, RolloutChange, rollout_workflow_id
from contracts.search_attributes import (
    ACCOUNT_ID,
    IMPORT_ID,
    PROVISIONING_STATE,
    ProvisioningState,
    search_attributes,
)
from contracts.signups import OttSignupInput, SendCodeRequest, SignupView, signup_workflow_id
from contracts.wallets import MessagingRolloutInput, messaging_rollout_workflow_id
from contracts.workflows import (
    ACCOUNT,
    ACCOUNT_CHANGED,
    ACCOUNT_SYNC,
    BULK_IMPORT,
    CUSTOMER_ROLLOUT,
    MESSAGING_ROLLOUT,
    MVNO_ORDER,
    OTT_SIGNUP,
    RECONCILIATION,
    ROLLOUT_CHANGED,
    SIGNUP_SEND_CODE,
    QueryRef,
    UpdateRef,
    WorkflowRef,
)

_schedule_log = logging.getLogger("reconciliation")

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")

# One call to Temporal may take this long before it counts as failed (and is tried again later): a
# hanging server must not hold a delivery, or the API process's shutdown, for the SDK's default minute.
RPC_TIMEOUT = timedelta(seconds=10)


# --- starting and telling workflows ---


async def start_order(client: Client, task_queue: str, order_id: str, *, customer_id: str, account_id: str) -> str:
    """Start the order's workflow; one already started or finished is left as it is. Returns its id."""
    workflow_id = order_workflow_id(order_id)
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            MVNO_ORDER.name,
            MvnoOrderInput(order_id=order_id),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=search_attributes(
                state=ProvisioningState.provisioning, order_id=order_id, customer_id=customer_id, account_id=account_id
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            rpc_timeout=RPC_TIMEOUT,
        )
    return workflow_id


async def account_changed(client: Client, task_queue: str, account_id: str) -> str:
    """Signal (starting it if needed) the account's workflow; returns its id. Does not wait for the CMMS."""
    workflow_id = account_workflow_id(account_id)
    await client.start_workflow(
        ACCOUNT.name,
        AccountWorkflowInput(account_id=account_id),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.pushing, account_id=account_id),
        start_signal=ACCOUNT_CHANGED.name,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def wake_account(client: Client, task_queue: str, account_id: str, wake_at: datetime) -> str:
    """Have the account's workflow wake at `wake_at`: start it, waiting until then, unless one runs (that
    one keeps its own timer, or pushes soon: it is left alone, and no push is asked for). Returns its id."""
    workflow_id = account_workflow_id(account_id)
    await client.start_workflow(
        ACCOUNT.name,
        AccountWorkflowInput(account_id=account_id, wake_at=wake_at),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.in_sync, account_id=account_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def sync_account(client: Client, task_queue: str, account_id: str) -> AccountSyncResult:
    """Push billing's current state to the CMMS through the account's workflow, and wait until it is there."""
    start = _start_operation(
        ACCOUNT,
        AccountWorkflowInput(account_id=account_id),
        id=account_workflow_id(account_id),
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.pushing, account_id=account_id),
    )
    return await _update_with_start(client, ACCOUNT_SYNC, None, start)


async def customer_changed(client: Client, task_queue: str, customer_id: str, revision: int) -> str:
    """Have every account of the customer re-provisioned with `revision`'s values; returns the rollout's id.

    Signal-with-start: a rollout already running for the customer starts its pass again for the newer
    revision, otherwise a new one starts.
    """
    workflow_id = rollout_workflow_id(customer_id)
    await client.start_workflow(
        CUSTOMER_ROLLOUT.name,
        CustomerRolloutInput(customer_id=customer_id, revision=revision),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.rolling_out, customer_id=customer_id),
        start_signal=ROLLOUT_CHANGED.name,
        start_signal_args=_args(ROLLOUT_CHANGED.input, RolloutChange(revision=revision)),
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def product_policy_changed(client: Client, task_queue: str, product_id: str) -> str:
    """Bring every account of the product into line with its messaging policy; returns the rollout's id."""
    workflow_id = messaging_rollout_workflow_id(product_id)
    await client.start_workflow(
        MESSAGING_ROLLOUT.name,
        MessagingRolloutInput(product_id=product_id),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.rolling_out),
        # A newer change starts again from the first account rather than racing the older rollout.
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def start_reconciliation(
    client: Client, task_queue: str, reconciliation_id: str, page_size: int, ceiling: DeletionCeiling
) -> str:
    """Start a reconciliation now (answered only once Temporal has it); returns its workflow id."""
    workflow_id = reconciliation_workflow_id(reconciliation_id)
    await client.start_workflow(
        RECONCILIATION.name,
        ReconciliationInput(page_size=page_size, ceiling=ceiling),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.reconciling),
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def confirm_reconciliation(
    client: Client, task_queue: str, reconciliation_id: str, page_size: int, held: ReconciliationProgress
) -> str:
    """Start a held reconciliation again under its workflow id, to delete the orphans it kept, from its
    counts; a confirmation already running is left as it is. Returns the workflow id."""
    workflow_id = reconciliation_workflow_id(reconciliation_id)
    progress = held.model_copy(update={"status": "running", "confirmed": True})
    await client.start_workflow(
        RECONCILIATION.name,
        ReconciliationInput(page_size=page_size, progress=progress, deleting=OrphanCursor()),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.reconciling),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id


async def start_import(client: Client, task_queue: str, import_id: str) -> str:
    """Start the import's workflow; one already started or finished is left as it is (the outbox may
    deliver twice, and the same file imported again names the same import). Returns its id."""
    workflow_id = import_workflow_id(import_id)
    attributes = search_attributes(state=ProvisioningState.importing)
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            BULK_IMPORT.name,
            ImportWorkflowInput(import_id=import_id),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes([*attributes, SearchAttributePair(IMPORT_ID, import_id)]),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            rpc_timeout=RPC_TIMEOUT,
        )
    return workflow_id


async def send_signup_code(client: Client, task_queue: str, start: OttSignupInput) -> SignupView:
    """Have the number's signup workflow send a code, starting it unless one is pending (whose answer then
    names its own signup id)."""
    operation = _start_operation(
        OTT_SIGNUP,
        start,
        id=signup_workflow_id(start.phone_number),
        task_queue=task_queue,
        search_attributes=search_attributes(state=ProvisioningState.pending),
    )
    return await _update_with_start(client, SIGNUP_SEND_CODE, SendCodeRequest(), operation)


# --- asking a workflow ---


async def update(client: Client, ref: UpdateRef[In, Out], workflow_id: str, arg: In) -> Out:
    """Run the update on the workflow and answer its result."""
    handle = client.get_workflow_handle(workflow_id)
    result: Out = await handle.execute_update(ref.name, args=_args(ref.input, arg), result_type=ref.result)
    return result


async def update_within(client: Client, ref: UpdateRef[In, Out], workflow_id: str, arg: In, patience: float) -> Out:
    """Run the update and answer its result, waiting at most `patience` seconds once the workflow has
    accepted it (TimeoutError after that: the update still runs)."""
    handle = client.get_workflow_handle(workflow_id)
    accepted = await handle.start_update(
        ref.name, args=_args(ref.input, arg), wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=ref.result
    )
    result: Out = await asyncio.wait_for(accepted.result(), patience)
    return result


async def query(client: Client, ref: QueryRef[Out], workflow_id: str, *, rpc_timeout: timedelta | None = None) -> Out:
    """The query's answer (a worker must be running the workflow)."""
    handle = client.get_workflow_handle(workflow_id)
    result: Out = await handle.query(ref.name, result_type=ref.result, rpc_timeout=rpc_timeout)
    return result


@dataclass(frozen=True)
class Reading(Generic[T]):
    """What a workflow reports: its result once `completed`, else its query's answer; `ended`: it closed
    without completing (failed, terminated, timed out), and the answer is where it got to."""

    value: T
    state: Literal["running", "completed", "ended"]


async def progress(client: Client, ref: QueryRef[Out], workflow_id: str) -> Reading[Out] | None:
    """For a workflow whose result is what `ref` reports: its result once it completed (read without a
    worker), else `ref`'s answer now. None: there is no such workflow."""
    handle = client.get_workflow_handle(workflow_id, result_type=ref.result)
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return Reading(await handle.result(), "completed")
        value: Out = await handle.query(ref.name, result_type=ref.result)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return Reading(value, "running" if description.status == WorkflowExecutionStatus.RUNNING else "ended")


async def result_once_started(client: Client, workflow_id: str, result_type: type[T]) -> T:
    """A workflow's result, waiting first for the workflow to exist: an order's starts just after
    `POST /v1/orders` has answered (the outbox relay starts it)."""
    handle = client.get_workflow_handle(workflow_id, result_type=result_type)
    while True:
        try:
            result: T = await handle.result()
            return result
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.05)


# --- visibility and histories ---


async def count_running(
    client: Client,
    ref: WorkflowRef[Any, Any],
    *,
    state: ProvisioningState | None = None,
    started_before: datetime | None = None,
    rpc_timeout: timedelta = RPC_TIMEOUT,
) -> int:
    """How many workflows of `ref`'s type run now, in `state` (their ProvisioningState) when given,
    started before `started_before` when given."""
    conditions = [f'WorkflowType = "{ref.name}"', 'ExecutionStatus = "Running"']
    if state is not None:
        conditions.append(f'{PROVISIONING_STATE.name} = "{state.value}"')
    if started_before is not None:
        conditions.append(f'StartTime < "{started_before.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"')
    counted = await client.count_workflows(" AND ".join(conditions), rpc_timeout=rpc_timeout)
    return counted.count


async def workflows_of_account(
    client: Client, account_id: str, *, limit: int, rpc_timeout: timedelta = RPC_TIMEOUT
) -> list[WorkflowExecution]:
    """Up to `limit` workflows (any type, open or closed) whose AccountId is the account's."""
    escaped = account_id.replace("\\", "\\\\").replace('"', '\\"')
    found = client.list_workflows(f'{ACCOUNT_ID.name} = "{escaped}"', limit=limit, rpc_timeout=rpc_timeout)
    return [execution async for execution in found]


@dataclass
class ActivityRun:
    """One activity a workflow run scheduled, as its history tells it (`in_progress`: still trying)."""

    scheduled_at: datetime
    outcome: str = "in_progress"  # ok, failed, timed_out, canceled, in_progress
    finished_at: datetime | None = None
    attempt: int | None = None  # the try that ended it (or, in progress, the current one)
    error: str | None = None  # the failure's message, decoded (the codec encrypts it in the history)


async def activity_runs(
    client: Client, workflow_id: str, run_id: str, activity_type: str, *, running: bool, rpc_timeout: timedelta
) -> list[ActivityRun]:
    """Every `activity_type` activity of the run, oldest first, from its history; on a `running` run,
    one still trying gets its attempt and last error from the workflow's description (a retried
    activity's tries are not in the history until it ends)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    runs: dict[int, ActivityRun] = {}
    async for event in handle.fetch_history_events(rpc_timeout=rpc_timeout):
        await _apply(client, activity_type, event, runs)
    waiting = [run for run in runs.values() if run.outcome == "in_progress"]
    if waiting and running:
        description = await handle.describe(rpc_timeout=rpc_timeout)
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == activity_type:
                waiting[-1].attempt = pending.attempt
                if pending.HasField("last_failure"):
                    waiting[-1].error = str(await client.data_converter.decode_failure(pending.last_failure))
    return list(runs.values())


_ENDED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: ("activity_task_started_event_attributes", None),
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed_event_attributes", "ok"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes", "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out_event_attributes", "timed_out"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled_event_attributes", "canceled"),
}


async def _apply(client: Client, activity_type: str, event: HistoryEvent, runs: dict[int, ActivityRun]) -> None:
    kind, when = event.event_type, event.event_time.ToDatetime(tzinfo=UTC)
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        if event.activity_task_scheduled_event_attributes.activity_type.name == activity_type:
            runs[event.event_id] = ActivityRun(scheduled_at=when)
        return
    ended = _ENDED.get(kind)
    if ended is None:
        return
    attributes = getattr(event, ended[0])
    run = runs.get(attributes.scheduled_event_id)
    if run is None:
        return
    if ended[1] is None:  # started: which try this is
        run.attempt = attributes.attempt
        return
    run.outcome, run.finished_at = ended[1], when
    if "failure" in attributes.DESCRIPTOR.fields_by_name and attributes.HasField("failure"):
        run.error = str(await client.data_converter.decode_failure(attributes.failure))


# --- the reconciliation Schedule ---


def reconciliation_schedule(task_queue: str, page_size: int, every: timedelta, ceiling: DeletionCeiling) -> Schedule:
    """A reconciliation every `every`. A run still going when the next is due makes that one skipped,
    never a second run beside it."""
    action = ScheduleActionStartWorkflow(
        RECONCILIATION.name,
        ReconciliationInput(page_size=page_size, ceiling=ceiling),
        id=SCHEDULED_WORKFLOW_ID,  # the server adds the time of each run
        task_queue=task_queue,
        typed_search_attributes=search_attributes(state=ProvisioningState.reconciling),
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def keep_reconciliation_schedule(
    client: Client, task_queue: str, page_size: int, every: timedelta | None, ceiling: DeletionCeiling
) -> None:
    """Create the schedule, or bring an existing one in line (idempotent); remove it when `every` is None."""
    handle = client.get_schedule_handle(SCHEDULE_ID)
    if every is None:
        try:
            await handle.delete()
            _schedule_log.info("reconciliation schedule removed")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = reconciliation_schedule(task_queue, page_size, every, ceiling)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        _schedule_log.info("reconciliation scheduled every %s", every)
        return
    except ScheduleAlreadyRunningError:
        pass

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The settings' action, spec and policy; the state (paused by an operator, say) stays as it is.
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

    await handle.update(replace)
    _schedule_log.info("reconciliation schedule updated: every %s", every)


# --- helpers ---


def _args(declared: type[Any] | None, arg: object) -> list[Any]:
    """The call's arguments: none for a handler that takes none."""
    return [] if declared is None else [arg]


def _start_operation(ref: WorkflowRef[In, Any], start: In, **options: Any) -> WithStartWorkflowOperation[Any, Any]:
    """Start `ref`'s workflow with `start` unless one runs under the id (then that one is used)."""
    return WithStartWorkflowOperation(
        ref.name, start, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, **options
    )


async def _update_with_start(
    client: Client, ref: UpdateRef[In, Out], arg: In, start: WithStartWorkflowOperation[Any, Any]
) -> Out:
    result: Out = await client.execute_update_with_start_workflow(
        ref.name, args=_args(ref.input, arg), start_workflow_operation=start, result_type=ref.result
    )
    return result
