"""Reconciliations, as the API and the worker ask for them: a run started on demand, where a run stands,
and the Temporal Schedule kept as the settings say (all through core.gateway)."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import col, select
from temporalio.client import Client

from billing.db import SessionMaker, snapshot
from billing.models import ReconciliationOrphan
from contracts.reconciliation import DeletionCeiling, ReconciliationProgress, reconciliation_workflow_id
from contracts.workflows import RECONCILIATION_PROGRESS
from core import gateway
from core.settings import ReconciliationSettings, Settings
from services.errors import Conflict, NotFound


@dataclass(frozen=True)
class Started:
    reconciliation_id: str
    workflow_id: str


def new_reconciliation_id() -> str:
    """Sortable by when it was asked for, unique beyond that."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


async def start_reconciliation(client: Client, settings: Settings, reconciliation_id: str | None = None) -> Started:
    """Start a reconciliation now (an operator's request, answered only once Temporal has it)."""
    reconciliation_id = reconciliation_id or new_reconciliation_id()
    workflow_id = await gateway.start_reconciliation(
        client,
        settings.temporal.task_queue,
        reconciliation_id,
        settings.reconciliation.page_size,
        deletion_ceiling(settings.reconciliation),
    )
    return Started(reconciliation_id, workflow_id)


def deletion_ceiling(settings: ReconciliationSettings) -> DeletionCeiling:
    """The orphans a run deletes without asking, as the settings say (the run takes them as input, so a
    replay never depends on the settings)."""
    return DeletionCeiling(
        count=settings.max_deletions,
        share=settings.max_deletion_share,
        hold_for=settings.hold_for.total_seconds(),
    )


async def confirm_reconciliation(
    client: Client, sessions: SessionMaker, settings: Settings, reconciliation_id: str
) -> Started:
    """Let a held run delete the orphans it found that are still orphans (each is asked about again
    before it is deleted): it starts again under its workflow id, from its counts, and ends `completed`."""
    held = await reconciliation_progress(client, reconciliation_id)
    if held is None:
        raise NotFound(f"reconciliation {reconciliation_id!r} does not exist")
    if held.status != "held":
        raise Conflict(f"reconciliation {reconciliation_id!r} is {held.status}, not held: there is nothing to confirm")
    if held.held_until is not None and held.held_until < datetime.now(UTC):
        raise Conflict(
            f"reconciliation {reconciliation_id!r} could be confirmed until {held.held_until:%Y-%m-%dT%H:%M:%SZ}:"
            " start a new reconciliation"
        )
    async with snapshot(sessions) as session:
        kept = await session.exec(
            select(ReconciliationOrphan.account_id)
            .where(col(ReconciliationOrphan.run_id) == reconciliation_workflow_id(reconciliation_id))
            .limit(1)
        )
        if kept.first() is None:
            raise Conflict(
                f"reconciliation {reconciliation_id!r} was held before a later run that was held too:"
                " confirm the latest held run"
            )
    workflow_id = await gateway.confirm_reconciliation(
        client, settings.temporal.task_queue, reconciliation_id, settings.reconciliation.page_size, held
    )
    return Started(reconciliation_id, workflow_id)


async def reconciliation_progress(client: Client, reconciliation_id: str) -> ReconciliationProgress | None:
    """The reconciliation's result, or its progress while it runs; None when there is no such run."""
    reading = await gateway.progress(client, RECONCILIATION_PROGRESS, reconciliation_workflow_id(reconciliation_id))
    if reading is None:
        return None
    if reading.state == "ended":
        reading.value.status = "failed"  # where it got to before it ended
    return reading.value


async def ensure_reconciliation_schedule(client: Client, settings: Settings) -> None:
    """Bring the schedule in line with `RECONCILE_EVERY` (every worker does this at start-up, so it is
    idempotent): removed when it is off. Beside PortaBilling too: a run there reads every account over
    PortaBilling's JSON API (docs/portabilling.md says what that costs)."""
    await gateway.keep_reconciliation_schedule(
        client,
        settings.temporal.task_queue,
        settings.reconciliation.page_size,
        settings.reconciliation.every,
        deletion_ceiling(settings.reconciliation),
    )
