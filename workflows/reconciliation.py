"""Reconciliation: compare billing's accounts with the CMMS's records, and repair the drift.

A merge join of two keyset-paged lists, both in account id order: billing's pending, active and
blocked accounts, and the CMMS's records, each entry a keyed digest of the record (never a password).
A live account with no record is `missing`, one whose record differs is `different`, a record with no
live account is `orphaned`. Missing and different accounts are repaired by their own account
workflow (so a repair queues behind a change being made meanwhile), orphaned records are deleted;
both under the CMMS's rate limit, a bounded window at a time. Continue-as-new between batches keeps
each run's history small; the progress and the unmerged entries travel with it.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import ReconciliationActivities
    from contracts.provisioning import CMMS_MAX_RETRY_INTERVAL, CMMS_REJECTED
    from contracts.reconciliation import (
        BillingEntry,
        BillingEntryPage,
        CmmsEntry,
        CmmsEntryPage,
        PageInput,
        ReconciliationInput,
        ReconciliationProgress,
        RepairInput,
    )
    from contracts.search_attributes import DRIFT_FOUND, REPAIRS_FAILED, ProvisioningState
    from contracts.workflows import RECONCILIATION, RECONCILIATION_PROGRESS
    from workflows.policies import ACCOUNT_SYNC_STEP, DB_STEP, HeartbeatStep, cmms_step, cmms_task_queue
    from workflows.visibility import show

# Each batch is at most four activities (two pages, two repairs): about 25 events, so 50 batches stay
# far below the 10,240-event warning.
BATCHES_PER_RUN = 50
# Records compared per page (`RECONCILE_PAGE_SIZE` is the worker's; the workflow takes it as input
# so that a replay never depends on the settings).
DEFAULT_PAGE_SIZE = 200
# Counters on the worker's Prometheus endpoint, by outcome (checked, missing, ..., failed).
METRIC = "reconciliation_accounts"


# Removing orphans: calls to the CMMS, retried while it is unavailable, heartbeating the records done.
ORPHAN_STEP: HeartbeatStep = {
    "start_to_close_timeout": timedelta(hours=1),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        maximum_interval=CMMS_MAX_RETRY_INTERVAL,
        non_retryable_error_types=[CMMS_REJECTED],
    ),
}


@workflow.defn(name=RECONCILIATION.name)
class ReconciliationWorkflow:
    @workflow.init
    def __init__(self, start: ReconciliationInput) -> None:
        self._progress = start.progress or ReconciliationProgress()
        self._page_size = start.page_size or DEFAULT_PAGE_SIZE
        # What has been read and not yet merged; None: the side's first page is still to be read.
        self._billing = start.billing
        self._cmms = start.cmms

    @workflow.query(name=RECONCILIATION_PROGRESS.name)
    def progress(self) -> ReconciliationProgress:
        return self._progress

    @workflow.run
    async def run(self, start: ReconciliationInput) -> ReconciliationProgress:
        show(ProvisioningState.reconciling)
        batches = 0
        while True:
            billing, cmms = await self._billing_page(), await self._cmms_page()
            if _exhausted(billing, 0) and _exhausted(cmms, 0):
                break
            before = self._progress.model_copy()
            missing, different, orphaned = self._merge(billing, cmms)
            await self._repair(missing + different, orphaned)
            self._count(before)
            self._show()
            batches += 1
            if batches >= BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    ReconciliationInput(
                        progress=self._progress, page_size=self._page_size, billing=self._billing, cmms=self._cmms
                    )
                )
        self._progress.status = "completed"
        self._show()
        p = self._progress
        workflow.logger.info(
            "reconciliation completed: checked=%d missing=%d different=%d orphaned=%d repaired=%d failed=%d",
            p.checked,
            p.missing,
            p.different,
            p.orphaned,
            p.repaired,
            p.failed,
        )
        show(ProvisioningState.completed)
        return self._progress

    def _merge(self, billing: BillingEntryPage, cmms: CmmsEntryPage) -> tuple[list[str], list[str], list[str]]:
        """Compare the entries read so far, as far as both sides are known; what is left waits for the
        next page of the side that ran out. Returns the missing, different and orphaned account ids."""
        missing: list[str] = []
        different: list[str] = []
        orphaned: list[str] = []
        b, c = billing.entries, cmms.entries
        i = j = 0
        while True:
            if i < len(b) and j < len(c) and b[i].account_id == c[j].account_id:
                if b[i].digest is not None:
                    self._progress.checked += 1
                    if not _same(b[i], c[j]):
                        different.append(b[i].account_id)
                i, j = i + 1, j + 1
            elif i < len(b) and ((j < len(c) and b[i].account_id < c[j].account_id) or _exhausted(cmms, j)):
                if b[i].digest is not None:
                    self._progress.checked += 1
                    missing.append(b[i].account_id)
                i += 1
            elif j < len(c) and (i < len(b) or _exhausted(billing, i)):
                self._progress.checked += 1
                orphaned.append(c[j].account_id)
                j += 1
            else:
                break
        billing.entries, cmms.entries = b[i:], c[j:]
        self._progress.missing += len(missing)
        self._progress.different += len(different)
        return missing, different, orphaned

    async def _repair(self, accounts: list[str], orphans: list[str]) -> None:
        if accounts:
            repaired = await workflow.execute_activity_method(
                ReconciliationActivities.repair_accounts, RepairInput(account_ids=accounts), **ACCOUNT_SYNC_STEP
            )
            self._progress.repaired += repaired.repaired
            self._progress.failed += repaired.failed
        if orphans:
            removed = await workflow.execute_activity_method(
                ReconciliationActivities.remove_orphans,
                RepairInput(account_ids=orphans),
                task_queue=cmms_task_queue(workflow.info().task_queue),
                **ORPHAN_STEP,
            )
            # A record whose account appeared meanwhile was no orphan: only what was removed or refused counts.
            self._progress.orphaned += removed.removed + removed.failed
            self._progress.repaired += removed.removed
            self._progress.failed += removed.failed

    async def _billing_page(self) -> BillingEntryPage:
        """The billing entries not yet merged, reading the next page when none are left (and there is one)."""
        if self._billing is None or (not self._billing.entries and self._billing.next_after is not None):
            after = self._billing.next_after if self._billing else None
            self._billing = await workflow.execute_activity_method(
                ReconciliationActivities.read_billing_page, PageInput(after=after, limit=self._page_size), **DB_STEP
            )
        return self._billing

    async def _cmms_page(self) -> CmmsEntryPage:
        if self._cmms is None or (not self._cmms.entries and self._cmms.next_after is not None):
            after = self._cmms.next_after if self._cmms else None
            self._cmms = await workflow.execute_activity_method(
                ReconciliationActivities.read_cmms_page, PageInput(after=after, limit=self._page_size), **cmms_step()
            )
        return self._cmms

    def _count(self, before: ReconciliationProgress) -> None:
        """This batch's counts on the worker's Prometheus endpoint (the SDK leaves them out on replay)."""
        counter = workflow.metric_meter().create_counter(METRIC, "accounts reconciled, by outcome", "accounts")
        for outcome in ("checked", "missing", "different", "orphaned", "repaired", "failed"):
            added = getattr(self._progress, outcome) - getattr(before, outcome)
            if added:
                counter.add(added, {"outcome": outcome})

    def _show(self) -> None:
        """The counts in the Temporal UI: the details line and the Int search attributes."""
        p = self._progress
        workflow.set_current_details(
            f"checked {p.checked}: missing {p.missing}, different {p.different}, orphaned {p.orphaned};"
            f" repaired {p.repaired}, failed {p.failed}"
        )
        shown = workflow.info().typed_search_attributes
        wanted = ((DRIFT_FOUND, p.drift), (REPAIRS_FAILED, p.failed))
        updates = [key.value_set(value) for key, value in wanted if shown.get(key) != value]
        if updates:
            workflow.upsert_search_attributes(updates)


def _same(billing: BillingEntry, cmms: CmmsEntry) -> bool:
    """Whether the CMMS holds what billing says; a messaging state billing does not drive is not compared."""
    return billing.digest == cmms.digest and billing.messaging in (None, cmms.messaging)


def _exhausted(page: BillingEntryPage | CmmsEntryPage, position: int) -> bool:
    """Whether the side has nothing after `position`: its entries are used up and it has no next page."""
    return position >= len(page.entries) and page.next_after is None
