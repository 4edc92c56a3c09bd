"""A bulk import: every account the file created goes to the CMMS, at the CMMS's rate limit.

One workflow per import (`import-<import_id>`), started through the outbox by the transaction that
stored the import. It walks the import's rows a page at a time: an `in_cmms` row is first compared with
the CMMS's record (one rate-limited call each), and one that is the same is adopted as it is; the others
are pushed through each account's own workflow, the one writer of its CMMS record, so that a change made
meanwhile is never overtaken. Continue-as-new between pages keeps each run's history small; the progress
travels with it, shown by the `progress` query, the workflow's details in the Temporal UI and the
`ImportRowsLeft` search attribute.
"""

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.imports import ImportActivities
    from contracts.imports import (
        AdoptInput,
        ImportPage,
        ImportPageInput,
        ImportProgress,
        ImportWorkflowInput,
        PushImportInput,
    )
    from contracts.search_attributes import IMPORT_ROWS_LEFT, ProvisioningState
    from contracts.workflows import BULK_IMPORT, IMPORT_PROGRESS
    from workflows.policies import ACCOUNT_SYNC_STEP, DB_STEP, cmms_step
    from workflows.visibility import show

# A page is at most a few hundred events (three an `in_cmms` row compared): ten stay far below the
# 10,240-event warning.
PAGES_PER_RUN = 10


@workflow.defn(name=BULK_IMPORT.name)
class ImportWorkflow:
    @workflow.init
    def __init__(self, start: ImportWorkflowInput) -> None:
        self._progress = start.progress or ImportProgress(import_id=start.import_id)
        self._after = start.after_account_id

    @workflow.query(name=IMPORT_PROGRESS.name)
    def progress(self) -> ImportProgress:
        return self._progress

    @workflow.run
    async def run(self, start: ImportWorkflowInput) -> ImportProgress:
        pages = 0
        while True:
            page = await workflow.execute_activity_method(
                ImportActivities.read_import_page,
                ImportPageInput(import_id=self._progress.import_id, after_account_id=self._after),
                **DB_STEP,
            )
            self._counts(page)
            if page.rows:
                push = await self._compare(page)
                if push:
                    pushed = await workflow.execute_activity_method(
                        ImportActivities.push_import_page,
                        PushImportInput(import_id=self._progress.import_id, account_ids=push),
                        **ACCOUNT_SYNC_STEP,
                    )
                    self._progress.done += pushed.done
                    self._progress.failed += pushed.failed
            self._show()
            self._after = page.next_after
            if self._after is None:
                self._progress.status = "completed"
                self._show()
                show(ProvisioningState.completed)
                return self._progress
            pages += 1
            if pages >= PAGES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    ImportWorkflowInput(
                        import_id=self._progress.import_id, progress=self._progress, after_account_id=self._after
                    )
                )

    async def _compare(self, page: ImportPage) -> list[str]:
        """Compare the page's `in_cmms` rows with the CMMS; the accounts to push: every row not in the
        CMMS already, and those it holds differently (repaired). The same ones are done."""
        adopted = [row.account_id for row in page.rows if row.in_cmms]
        push = [row.account_id for row in page.rows if not row.in_cmms]
        compared = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    ImportActivities.compare_imported_account, AdoptInput(account_id=account_id), **cmms_step()
                )
                for account_id in adopted
            ),
            return_exceptions=True,
        )
        for account_id, result in zip(adopted, compared, strict=True):
            if isinstance(result, BaseException):
                # Not comparable (the CMMS refused the read): pushed, and the push's own outcome tells.
                self._progress.repaired += 1
                push.append(account_id)
                continue
            if result.outcome == "same" and not result.push:
                self._progress.adopted += 1
                self._progress.done += 1
                continue
            if result.outcome == "same":
                self._progress.adopted += 1
            else:
                self._progress.repaired += 1
            push.append(result.account_id)
        return sorted(push)

    def _counts(self, page: ImportPage) -> None:
        if page.total is not None:
            self._progress.total = page.total
        if page.accepted is not None:
            self._progress.accepted = page.accepted
        if page.rejected is not None:
            self._progress.rejected = page.rejected

    def _show(self) -> None:
        """The progress in words on the workflow's page in the Temporal UI, and the rows left as a search
        attribute (an unchanged value costs no history event)."""
        p = self._progress
        workflow.set_current_details(
            f"import {p.import_id}: {p.done} of {p.accepted} accepted rows done, {p.failed} failed, "
            f"{p.rejected} rejected of {p.total} ({p.adopted} adopted as held, {p.repaired} repaired)"
        )
        left = max(0, p.accepted - p.done - p.failed)
        if workflow.info().typed_search_attributes.get(IMPORT_ROWS_LEFT) != left:
            workflow.upsert_search_attributes([IMPORT_ROWS_LEFT.value_set(left)])
