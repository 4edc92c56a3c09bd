"""What happened to an account, in one answer: billing's record of it (its orders, its signups, the
edits made to it) and the workflows' (every workflow that names the account, where each stands, and
every push to the CMMS with its outcome, attempts and times, read from their histories).

Temporal's part is read with the client's data converter, so a failure's message is decrypted here
and nowhere else; it carries the CMMS's reason, never a password (the CMMS client keeps them out of
its errors). Billing's part is answered even while Temporal is unreachable.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from billing.db import snapshot
from billing.models import Account, AuditEntry, Signup
from contracts.provisioning import account_workflow_id
from contracts.search_attributes import PROVISIONING_STATE
from core.temporal import is_transient
from services import audit, orders
from services.outbox import Outbox
from services.pagination import PageRequest
from services.rows import get
from workflows.account import AccountWorkflow

log = logging.getLogger(__name__)

PUSH_ACTIVITY = "provision_account"
# At most this many workflows (the newest) and this many pushes (the newest) in one answer.
MAX_WORKFLOWS = 20
MAX_PUSHES = 100
MAX_ROWS = 100
_RPC_TIMEOUT = timedelta(seconds=5)


@dataclass(frozen=True)
class WorkflowRun:
    workflow_id: str
    run_id: str
    workflow_type: str
    status: str  # running, completed, failed, continued_as_new, ...
    provisioning_state: str | None  # the ProvisioningState search attribute
    started_at: datetime
    closed_at: datetime | None


@dataclass
class Push:
    """One push of the account to the CMMS (a `provision_account` activity) and how it ended."""

    workflow_id: str
    run_id: str
    scheduled_at: datetime
    outcome: str = "in_progress"  # ok, failed, timed_out, canceled, in_progress
    finished_at: datetime | None = None
    attempt: int | None = None  # the try that ended it (or, in progress, the current one)
    error: str | None = None


@dataclass(frozen=True)
class AccountHistory:
    account: Account
    orders: list[orders.OrderView]
    signups: list[Signup]
    changes: list[AuditEntry]
    workflows: list[WorkflowRun] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    last_error: str | None = None  # the account workflow's, when it runs; else billing's
    temporal: str = "ok"  # "unavailable": the workflows' part could not be read


async def account_history(outbox: Outbox, temporal: Client, account_id: str) -> AccountHistory:
    async with snapshot(outbox.sessions) as session:
        account = await get(session, Account, account_id, "account")
        # An OTT account's id is its number's digits: its signups include those that never verified.
        number = f"+{account_id}" if account_id.isdigit() else None
        query = select(Signup).where(or_(col(Signup.account_id) == account_id, col(Signup.phone_number) == number))
        newest_signups = query.order_by(col(Signup.created_at).desc()).limit(MAX_ROWS)
        signups = list((await session.exec(newest_signups)).all())[::-1]
    newest = PageRequest(MAX_ROWS, order="desc")
    placed = (await orders.list_orders(outbox, orders.OrderFilter(account_id=account_id), newest)).items[::-1]
    changes = (await audit.trail(outbox, "account", account_id, newest)).items[::-1]
    history = AccountHistory(account, placed, signups, changes, last_error=account.last_error)
    try:
        return await _with_workflows(temporal, history)
    except Exception as err:
        if not is_transient(err):
            raise
        log.warning("account history of %s without the workflows: Temporal unreachable", account_id)
        return AccountHistory(account, placed, signups, changes, temporal="unavailable")


async def _with_workflows(temporal: Client, history: AccountHistory) -> AccountHistory:
    account_id = history.account.account_id
    escaped = account_id.replace("\\", "\\\\").replace('"', '\\"')
    found = [
        execution
        async for execution in temporal.list_workflows(
            f'AccountId = "{escaped}"', limit=MAX_WORKFLOWS * 5, rpc_timeout=_RPC_TIMEOUT
        )
    ]
    newest = sorted(found, key=lambda execution: execution.start_time, reverse=True)[:MAX_WORKFLOWS]
    runs = [_run(execution) for execution in sorted(newest, key=lambda execution: execution.start_time)]
    pushes: list[Push] = []
    for run in runs:
        pushes += await _pushes(temporal, run)
    pushes.sort(key=lambda push: push.scheduled_at)
    last_error = history.last_error
    own = [run for run in runs if run.workflow_id == account_workflow_id(account_id) and run.status == "running"]
    if own:
        last_error = await _last_error(temporal, account_id, last_error)
    return AccountHistory(
        history.account,
        history.orders,
        history.signups,
        history.changes,
        workflows=runs,
        pushes=pushes[-MAX_PUSHES:],
        last_error=last_error,
    )


def _run(execution: WorkflowExecution) -> WorkflowRun:
    status = execution.status or WorkflowExecutionStatus.RUNNING
    return WorkflowRun(
        workflow_id=execution.id,
        run_id=execution.run_id,
        workflow_type=execution.workflow_type,
        status=status.name.lower(),
        provisioning_state=execution.typed_search_attributes.get(PROVISIONING_STATE),
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


async def _pushes(temporal: Client, run: WorkflowRun) -> list[Push]:
    """The run's pushes, from its history; one still trying gets its attempt and last error from the
    workflow's description (a retried activity's tries are not in the history until it ends)."""
    handle = temporal.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    pushes: dict[int, Push] = {}
    async for event in handle.fetch_history_events(rpc_timeout=_RPC_TIMEOUT):
        await _apply(temporal, run, event, pushes)
    waiting = [push for push in pushes.values() if push.outcome == "in_progress"]
    if waiting and run.status == "running":
        description = await handle.describe(rpc_timeout=_RPC_TIMEOUT)
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == PUSH_ACTIVITY:
                waiting[-1].attempt = pending.attempt
                if pending.HasField("last_failure"):
                    waiting[-1].error = str(await temporal.data_converter.decode_failure(pending.last_failure))
    return list(pushes.values())


async def _apply(temporal: Client, run: WorkflowRun, event: HistoryEvent, pushes: dict[int, Push]) -> None:
    kind, when = event.event_type, event.event_time.ToDatetime(tzinfo=UTC)
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        if event.activity_task_scheduled_event_attributes.activity_type.name == PUSH_ACTIVITY:
            pushes[event.event_id] = Push(run.workflow_id, run.run_id, scheduled_at=when)
        return
    ended = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: ("activity_task_started_event_attributes", None),
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed_event_attributes", "ok"),
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes", "failed"),
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out_event_attributes", "timed_out"),
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled_event_attributes", "canceled"),
    }.get(kind)
    if ended is None:
        return
    attributes = getattr(event, ended[0])
    push = pushes.get(attributes.scheduled_event_id)
    if push is None:
        return
    if ended[1] is None:  # started: which try this is
        push.attempt = attributes.attempt
        return
    push.outcome, push.finished_at = ended[1], when
    if "failure" in attributes.DESCRIPTOR.fields_by_name and attributes.HasField("failure"):
        push.error = str(await temporal.data_converter.decode_failure(attributes.failure))


async def _last_error(temporal: Client, account_id: str, otherwise: str | None) -> str | None:
    """The account workflow's own word on its last push (its query needs a worker: without one, billing's)."""
    handle = temporal.get_workflow_handle_for(AccountWorkflow.run, account_workflow_id(account_id))
    try:
        return await handle.query(AccountWorkflow.last_error, rpc_timeout=timedelta(seconds=2))
    except Exception as err:
        log.info("account %s: last_error query not answered (%s)", account_id, type(err).__name__)
        return otherwise
