"""What happened to an account, in one answer: billing's record of it (its orders, its signups, the
edits made to it) and the workflows' (every workflow that names the account, where each stands, and
every push to the CMMS with its outcome, attempts and times, read from their histories).

Temporal's part is read with the client's data converter, so a failure's message is decrypted here
and nowhere else; it carries the CMMS's reason, never a password (the CMMS client keeps them out of
its errors). Billing's part is answered even while Temporal is unreachable.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from billing.db import snapshot
from billing.models import Account, AuditEntry, Signup
from contracts.provisioning import account_workflow_id
from contracts.search_attributes import PROVISIONING_STATE
from contracts.workflows import ACCOUNT_LAST_ERROR
from core import gateway
from core.temporal import is_transient
from services import audit, orders
from services.outbox import Outbox
from services.pagination import PageRequest
from services.rows import get

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
    by_account = orders.OrderFilter(account_id=account_id)
    placed = (await orders.list_orders(outbox, by_account, newest, owner=None)).items[::-1]
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
    found = await gateway.workflows_of_account(temporal, account_id, limit=MAX_WORKFLOWS * 5, rpc_timeout=_RPC_TIMEOUT)
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
    """The run's pushes (its `provision_account` activities), from its history."""
    found = await gateway.activity_runs(
        temporal, run.workflow_id, run.run_id, PUSH_ACTIVITY, running=run.status == "running", rpc_timeout=_RPC_TIMEOUT
    )
    return [
        Push(
            run.workflow_id,
            run.run_id,
            scheduled_at=push.scheduled_at,
            outcome=push.outcome,
            finished_at=push.finished_at,
            attempt=push.attempt,
            error=push.error,
        )
        for push in found
    ]


async def _last_error(temporal: Client, account_id: str, otherwise: str | None) -> str | None:
    """The account workflow's own word on its last push (its query needs a worker: without one, billing's)."""
    try:
        return await gateway.query(
            temporal, ACCOUNT_LAST_ERROR, account_workflow_id(account_id), rpc_timeout=timedelta(seconds=2)
        )
    except Exception as err:
        log.info("account %s: last_error query not answered (%s)", account_id, type(err).__name__)
        return otherwise
