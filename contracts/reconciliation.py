"""Inputs and results of a reconciliation (billing against the CMMS): ids, counters and keyed digests,
never a password."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# `reconciliation-<reconciliation_id>`; the schedule's runs get the server's timestamp after
# `reconciliation-scheduled`, so their reconciliation id is `scheduled-<time>`.
WORKFLOW_ID_PREFIX = "reconciliation-"
SCHEDULE_ID = "reconciliation"
SCHEDULED_WORKFLOW_ID = f"{WORKFLOW_ID_PREFIX}scheduled"


def reconciliation_workflow_id(reconciliation_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{reconciliation_id}"


class ReconciliationProgress(BaseModel):
    """Where a reconciliation stands: its result, its `progress` query, and carried over continue-as-new."""

    # `failed`: the run ended without finishing (the CMMS refused the record list, or it was terminated);
    # `held`: it repaired what was missing or different and ended without deleting the orphans it found,
    # too many to delete without an operator's confirmation (`reason` says why).
    status: Literal["running", "completed", "held", "failed"] = "running"
    checked: int = 0  # live accounts and CMMS records compared
    missing: int = 0
    different: int = 0
    orphaned: int = 0
    repaired: int = 0  # drift put right: the CMMS now holds what billing says
    failed: int = 0  # drift the CMMS refused to have put right (each account shows why)
    # The sides' sizes, which the deletion ceiling weighs the orphans against: billing's accounts
    # (pending, active, blocked) and the CMMS's records.
    billing_accounts: int = 0
    cmms_records: int = 0
    reason: str | None = None  # why the run was held
    held_until: datetime | None = None  # a held run can be confirmed until then
    confirmed: bool = False  # an operator let a held run delete its orphans

    @property
    def drift(self) -> int:
        return self.missing + self.different + self.orphaned


class BillingEntry(BaseModel):
    """A billing account as reconciliation compares it."""

    account_id: str
    # A keyed digest of the record the CMMS should hold (password included, as its digest); None for
    # an account still being provisioned by its order, whose record is the order's business.
    digest: str | None
    messaging: bool | None  # the messaging state the CMMS should show; None: billing does not drive it


class CmmsEntry(BaseModel):
    """A CMMS record as reconciliation compares it: the same digest, from what the CMMS holds."""

    account_id: str
    digest: str
    messaging: bool


class PageInput(BaseModel):
    after: str | None = None  # keyset pagination: the page starts after this id
    limit: int


class BillingEntryPage(BaseModel):
    entries: list[BillingEntry]  # by account id
    next_after: str | None  # None: this was the last page


class CmmsEntryPage(BaseModel):
    entries: list[CmmsEntry]  # by account id
    next_after: str | None


class RepairInput(BaseModel):
    account_ids: list[str]


class RepairResult(BaseModel):
    repaired: int
    failed: int


class OrphansResult(BaseModel):
    removed: int
    # Records that turned out to have a live account after all (created since the page was read).
    not_orphaned: int = 0
    failed: int = 0


class DeletionCeiling(BaseModel):
    """How many orphans a run deletes without asking: it holds them when they are more than `count`
    and more than `share` of the CMMS's records, or when billing has no account at all. A held run
    can be confirmed for `hold_for` seconds."""

    count: int = 25
    share: float = 0.05
    hold_for: float = 7 * 24 * 3600

    def reason(self, orphans: int, records: int, accounts: int) -> str | None:
        """Why `orphans` may not be deleted without a confirmation; None: they may."""
        if orphans == 0:
            return None
        if accounts == 0:
            return f"billing has no accounts: deleting {orphans} CMMS records would empty the CMMS"
        if orphans > self.count and orphans > self.share * records:
            return (
                f"{orphans} of the CMMS's {records} records have no account in billing: more than"
                f" {self.count} records and more than {self.share:.0%} of them"
            )
        return None


class OrphanCursor(BaseModel):
    """Where the deletion of a run's orphans (kept in billing's database, by run) stands."""

    after: str | None = None


class ReconciliationInput(BaseModel):
    """`page_size` to start (None: the workflow's default); continue-as-new carries where the merge stands.
    `deleting` set: the run deletes the orphans recorded under its workflow id, from that cursor (its
    merge is done, or it was held and then confirmed)."""

    page_size: int | None = None
    progress: ReconciliationProgress | None = None
    billing: BillingEntryPage | None = None  # entries read but not yet compared, and the cursor
    cmms: CmmsEntryPage | None = None
    ceiling: DeletionCeiling = Field(default_factory=DeletionCeiling)
    deleting: OrphanCursor | None = None


class OrphansInput(BaseModel):
    """Orphans a run found (`run_id`: its workflow id), kept until it deletes them."""

    run_id: str
    account_ids: list[str]


class OrphanPageInput(BaseModel):
    run_id: str
    after: str | None = None
    limit: int


class OrphanPage(BaseModel):
    account_ids: list[str]  # by account id
    next_after: str | None


class HoldInput(BaseModel):
    run_id: str
    held: bool = True  # False: the run was confirmed, its orphans are being deleted


class ForgetInput(BaseModel):
    """Forget a run's orphans, and any recorded before `stale_before` (runs ended without deleting)."""

    run_id: str
    stale_before: datetime


# Why there is no reconciliation beside PortaBilling: it compares the CMMS with the built-in billing.
BESIDE_PORTABILLING = "reconciliation compares the CMMS with the built-in billing; BILLING_SOURCE is portabilling"
