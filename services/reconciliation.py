"""Reconciliations, as the API and the worker ask for them: a run started on demand, where a run stands,
and the Temporal Schedule kept as the settings say (all through core.gateway)."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client

from contracts.reconciliation import ReconciliationProgress, reconciliation_workflow_id
from contracts.workflows import RECONCILIATION_PROGRESS
from core import gateway
from core.settings import Settings


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
        client, settings.temporal.task_queue, reconciliation_id, settings.reconciliation.page_size
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
        client, settings.temporal.task_queue, settings.reconciliation.page_size, settings.reconciliation.every
    )
