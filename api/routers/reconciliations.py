"""Reconciliations: compare billing with the CMMS and repair the drift, on demand (the worker's
Temporal Schedule runs them every `RECONCILE_EVERY` as well), with either billing source: beside
PortaBilling a run pages PortaBilling's accounts, and its first run adopts those that never sent an event."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel

from api.auth import Role
from api.deps import OutboxDep, SettingsDep, TemporalDep, require
from api.problems import Problem
from contracts.reconciliation import ReconciliationProgress
from services import reconciliation

router = APIRouter(prefix="/v1/reconciliations", tags=["reconciliations"], dependencies=[Depends(require(Role.admin))])

# An on-demand id (`20261202T130000Z-1a2b3c`) or a scheduled run's (`scheduled-2026-12-02T13:00:00Z`).
ReconciliationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]


class ReconciliationAccepted(BaseModel):
    reconciliation_id: str
    workflow_id: str
    progress_url: str


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def post_reconciliation(temporal: TemporalDep, settings: SettingsDep) -> ReconciliationAccepted:
    """Start a reconciliation now; its progress and result are at `progress_url`."""
    started = await reconciliation.start_reconciliation(temporal, settings)
    return ReconciliationAccepted(
        reconciliation_id=started.reconciliation_id,
        workflow_id=started.workflow_id,
        progress_url=f"/v1/reconciliations/{started.reconciliation_id}",
    )


@router.get("/{reconciliation_id}")
async def get_reconciliation(reconciliation_id: ReconciliationId, temporal: TemporalDep) -> ReconciliationProgress:
    """`{status: running|completed|held|failed, checked, missing, different, orphaned, repaired, failed}`;
    a `held` run says why in `reason`, and can be confirmed until `held_until`."""
    progress = await reconciliation.reconciliation_progress(temporal, reconciliation_id)
    if progress is None:
        raise Problem(404, f"reconciliation {reconciliation_id!r} does not exist")
    return progress


@router.post(
    "/{reconciliation_id}/confirm",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "no such reconciliation"}, 409: {"description": "the run is not held"}},
)
async def confirm_reconciliation(
    reconciliation_id: ReconciliationId, temporal: TemporalDep, outbox: OutboxDep, settings: SettingsDep
) -> ReconciliationAccepted:
    """Let a held run delete the orphaned CMMS records it found that are still orphans; it then ends
    `completed` (its progress at `progress_url`)."""
    started = await reconciliation.confirm_reconciliation(temporal, outbox.sessions, settings, reconciliation_id)
    return ReconciliationAccepted(
        reconciliation_id=started.reconciliation_id,
        workflow_id=started.workflow_id,
        progress_url=f"/v1/reconciliations/{started.reconciliation_id}",
    )
