"""Inputs and results of a reconciliation (billing against the CMMS): ids, counters and keyed digests,
never a password."""

from typing import Literal

from pydantic import BaseModel

# `reconciliation-<reconciliation_id>`; the schedule's runs get the server's timestamp after
# `reconciliation-scheduled`, so their reconciliation id is `scheduled-<time>`.
WORKFLOW_ID_PREFIX = "reconciliation-"
SCHEDULE_ID = "reconciliation"
SCHEDULED_WORKFLOW_ID = f"{WORKFLOW_ID_PREFIX}scheduled"


def reconciliation_workflow_id(reconciliation_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{reconciliation_id}"


class ReconciliationProgress(BaseModel):
    """Where a reconciliation stands: its result, its `progress` query, and carried over continue-as-new."""

    # `failed`: the run ended without finishing (the CMMS refused the record list, or it was terminated).
    status: Literal["running", "completed", "failed"] = "running"
    checked: int = 0  # live accounts and CMMS records compared
    missing: int = 0
    different: int = 0
    orphaned: int = 0
    repaired: int = 0  # drift put right: the CMMS now holds what billing says
    failed: int = 0  # drift the CMMS refused to have put right (each account shows why)

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


class ReconciliationInput(BaseModel):
    """`page_size` to start (None: the workflow's default); continue-as-new carries where the merge stands."""

    page_size: int | None = None
    progress: ReconciliationProgress | None = None
    billing: BillingEntryPage | None = None  # entries read but not yet compared, and the cursor
    cmms: CmmsEntryPage | None = None


# Why there is no reconciliation beside PortaBilling: it compares the CMMS with the built-in billing.
BESIDE_PORTABILLING = "reconciliation compares the CMMS with the built-in billing; BILLING_SOURCE is portabilling"
