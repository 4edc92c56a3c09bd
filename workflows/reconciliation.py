"""Reconciliation: compare billing's accounts with the CMMS's records, and repair the drift.

A merge join of two keyset-paged lists, both in account id order: billing's pending, active and
blocked accounts, and the CMMS's records, each entry a keyed digest of the record (never a password).
A live account with no record is `missing`, one whose record differs is `different`, a record with no
live account is `orphaned`. Missing and different accounts are repaired by their own account
workflow (so a repair queues behind a change being made meanwhile), orphaned records are deleted;
both under the CMMS's rate limit, a bounded window at a time. Continue-as-new between batches keeps
each run's history small; the progress and the unmerged entries travel with it.

Orphans are kept in billing's database while the merge runs and deleted only once it is done, when
the whole count is known: more than the ceiling (`DeletionCeiling`), or a billing with no accounts,
and the run deletes none, ends `held` (so it holds up no later scheduled run) and says why; an
operator's confirmation starts the run again under its workflow id, to delete those still orphaned.
"""

from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import ReconciliationActivities
    from contracts.provisioning import CMMS_MAX_RETRY_INTERVAL, CMMS_REJECTED
    from contracts.reconciliation import (
        WORKFLOW_ID_PREFIX,
        BillingEntry,
        BillingEntryPage,
        CmmsEntry,
        CmmsEntryPage,
        ForgetInput,
        HoldInput,
        OrphanCursor,
        OrphanPageInput,
        OrphansInput,
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
# Counters on the worker's Prometheus endpoint, by outcome (checked, missing, ..., failed), and the runs
# that ended, by status (completed, held).
METRIC = "reconciliation_accounts"
RUNS_METRIC = "reconciliation_runs"
# Orphans are kept in billing's database and deleted once the merge is done, under the ceiling; a run
# recorded without this marker deletes each batch's orphans as it goes, and replays so.
ORPHANS_AFTER_MERGE = "orphans-deleted-after-the-merge-under-a-ceiling"
# Orphans are forgotten this long after a held run could last have been confirmed (a run that ended
# between keeping and deleting them leaves them behind).
STALE_AFTER_HOLD = timedelta(days=1)


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
        self._ceiling = start.ceiling
        # What has been read and not yet merged; None: the side's first page is still to be read.
        self._billing = start.billing
        self._cmms = start.cmms

    @workflow.query(name=RECONCILIATION_PROGRESS.name)
    def progress(self) -> ReconciliationProgress:
        return self._progress

    @workflow.run
    async def run(self, start: ReconciliationInput) -> ReconciliationProgress:
        show(ProvisioningState.reconciling)
        if start.deleting is not None:  # the merge is done, or the run was held and is now confirmed
            await self._delete_orphans(start.deleting)
            return self._complete()
        after_merge = workflow.patched(ORPHANS_AFTER_MERGE)
        batches = 0
        while True:
            billing, cmms = await self._billing_page(), await self._cmms_page()
            if _exhausted(billing, 0) and _exhausted(cmms, 0):
                break
            before = self._progress.model_copy()
            missing, different, orphaned = self._merge(billing, cmms)
            if after_merge:
                await self._repair(missing + different, [])
                await self._keep_orphans(orphaned)
            else:
                await self._repair(missing + different, orphaned)
            self._count(before)
            self._show()
            batches += 1
            if batches >= BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                self._continue(billing=self._billing, cmms=self._cmms)
        if not after_merge:
            return self._complete()
        p = self._progress
        reason = self._ceiling.reason(p.orphaned, p.cmms_records, p.billing_accounts)
        if reason is not None:
            return await self._hold(reason)
        await self._delete_orphans(OrphanCursor())
        return self._complete()

    def _continue(
        self,
        *,
        billing: BillingEntryPage | None = None,
        cmms: CmmsEntryPage | None = None,
        deleting: OrphanCursor | None = None,
    ) -> NoReturn:
        workflow.continue_as_new(
            ReconciliationInput(
                progress=self._progress,
                page_size=self._page_size,
                billing=billing,
                cmms=cmms,
                ceiling=self._ceiling,
                deleting=deleting,
            )
        )

    def _complete(self) -> ReconciliationProgress:
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
        self._ended("completed")
        show(ProvisioningState.completed)
        return self._progress

    async def _hold(self, reason: str) -> ReconciliationProgress:
        """End without deleting the orphans, kept for an operator's confirmation: repairs are done, and
        a later scheduled run is not held up (the Schedule skips a run only while one is open)."""
        run_id = workflow.info().workflow_id
        await workflow.execute_activity_method(
            ReconciliationActivities.hold_orphans, HoldInput(run_id=run_id), **DB_STEP
        )
        p = self._progress
        p.status, p.reason = "held", reason
        p.held_until = workflow.now() + timedelta(seconds=self._ceiling.hold_for)
        self._show()
        reconciliation_id = run_id.removeprefix(WORKFLOW_ID_PREFIX)
        workflow.logger.error(
            "reconciliation %s held, no orphaned record deleted: %s; checked=%d missing=%d different=%d orphaned=%d"
            " repaired=%d failed=%d; confirm with POST /v1/reconciliations/%s/confirm before %s",
            reconciliation_id,
            reason,
            p.checked,
            p.missing,
            p.different,
            p.orphaned,
            p.repaired,
            p.failed,
            reconciliation_id,
            f"{p.held_until:%Y-%m-%dT%H:%M:%SZ}",
        )
        self._ended("held")
        show(ProvisioningState.held)
        return p

    async def _keep_orphans(self, orphans: list[str]) -> None:
        if orphans:
            await workflow.execute_activity_method(
                ReconciliationActivities.record_orphans,
                OrphansInput(run_id=workflow.info().workflow_id, account_ids=orphans),
                **DB_STEP,
            )
            self._progress.orphaned += len(orphans)

    async def _delete_orphans(self, cursor: OrphanCursor) -> None:
        """Delete the orphans kept under this workflow id, a page at a time, each asked about again first
        (an account created since keeps its record); then forget them."""
        run_id = workflow.info().workflow_id
        if self._progress.confirmed and cursor.after is None:
            # Confirmed: its orphans are no longer a held run's, which a later held run would forget.
            await workflow.execute_activity_method(
                ReconciliationActivities.hold_orphans, HoldInput(run_id=run_id, held=False), **DB_STEP
            )
        batches = 0
        while True:
            page = await workflow.execute_activity_method(
                ReconciliationActivities.read_orphans,
                OrphanPageInput(run_id=run_id, after=cursor.after, limit=self._page_size),
                **DB_STEP,
            )
            if page.account_ids:
                before = self._progress.model_copy()
                await self._remove(page.account_ids)
                self._count(before)
                self._show()
            if page.next_after is None:
                break
            cursor = OrphanCursor(after=page.next_after)
            batches += 1
            if batches >= BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                self._continue(deleting=cursor)
        stale_before = workflow.now() - timedelta(seconds=self._ceiling.hold_for) - STALE_AFTER_HOLD
        await workflow.execute_activity_method(
            ReconciliationActivities.forget_orphans, ForgetInput(run_id=run_id, stale_before=stale_before), **DB_STEP
        )

    async def _remove(self, orphans: list[str]) -> None:
        removed = await workflow.execute_activity_method(
            ReconciliationActivities.remove_orphans,
            RepairInput(account_ids=orphans),
            task_queue=cmms_task_queue(workflow.info().task_queue),
            **ORPHAN_STEP,
        )
        self._progress.repaired += removed.removed
        self._progress.failed += removed.failed

    def _ended(self, status: str) -> None:
        counter = workflow.metric_meter().create_counter(RUNS_METRIC, "reconciliation runs ended, by status", "runs")
        counter.add(1, {"status": status})

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
                self._progress.billing_accounts += 1
                self._progress.cmms_records += 1
                if b[i].digest is not None:
                    self._progress.checked += 1
                    if not _same(b[i], c[j]):
                        different.append(b[i].account_id)
                i, j = i + 1, j + 1
            elif i < len(b) and ((j < len(c) and b[i].account_id < c[j].account_id) or _exhausted(cmms, j)):
                self._progress.billing_accounts += 1
                if b[i].digest is not None:
                    self._progress.checked += 1
                    missing.append(b[i].account_id)
                i += 1
            elif j < len(c) and (i < len(b) or _exhausted(billing, i)):
                self._progress.cmms_records += 1
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
