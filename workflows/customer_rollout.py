"""Customized provisioning: a customer's custom fields changed, so every one of its accounts is re-provisioned.

One rollout per customer (`rollout-<customer_id>`). It walks the customer's accounts a page at a
time and has each account's own workflow push billing's *current* state, a bounded window at a time
(the `-cmms` task queue holds the pushes to the CMMS's rate limit). A newer change signals
`changed`: the pass starts again from the first account, so none ends with a stale value, and a
burst of changes costs one pass, not one each. Continue-as-new between pages keeps each run's
history small; the progress travels with it.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.rollouts import RolloutActivities
    from contracts.rollouts import (
        AccountPage,
        AccountPageInput,
        CustomerRolloutInput,
        RolloutChange,
        RolloutProgress,
        SyncAccountsInput,
    )
    from contracts.search_attributes import ProvisioningState
    from contracts.workflows import CUSTOMER_ROLLOUT, ROLLOUT_CHANGED, ROLLOUT_PROGRESS
    from workflows.policies import ACCOUNT_SYNC_STEP, DB_STEP
    from workflows.visibility import show

# About a dozen events a page: 20 pages stay far below the 10,240-event warning.
PAGES_PER_RUN = 20


@workflow.defn(name=CUSTOMER_ROLLOUT.name)
class CustomerRolloutWorkflow:
    @workflow.init
    def __init__(self, start: CustomerRolloutInput) -> None:
        self._progress = start.progress or RolloutProgress(customer_id=start.customer_id, revision=start.revision)
        self._target = max(start.revision, self._progress.revision)  # the newest revision heard of
        self._after = start.after_account_id

    @workflow.signal(name=ROLLOUT_CHANGED.name)
    def changed(self, change: RolloutChange) -> None:
        """The customer changed again: its accounts must end with this revision's values (or newer)."""
        self._target = max(self._target, change.revision)

    @workflow.query(name=ROLLOUT_PROGRESS.name)
    def progress(self) -> RolloutProgress:
        return self._progress

    @workflow.run
    async def run(self, start: CustomerRolloutInput) -> RolloutProgress:
        pages = 0
        while True:
            if self._target > self._progress.revision:
                self._restart()
            page = await self._page()
            if page.customer_revision > self._target:  # a change whose signal is still on its way (or lost)
                self._target = page.customer_revision
                continue
            if page.account_ids:
                synced = await workflow.execute_activity_method(
                    RolloutActivities.sync_rollout_accounts,
                    SyncAccountsInput(customer_id=self._progress.customer_id, account_ids=page.account_ids),
                    **ACCOUNT_SYNC_STEP,
                )
                self._progress.done += synced.done
                self._progress.failed += synced.failed
            self._show()
            self._after = page.next_after
            if self._after is None and self._target == self._progress.revision:
                self._progress.status = "completed"
                show(ProvisioningState.completed)
                return self._progress
            pages += 1
            if pages >= PAGES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    CustomerRolloutInput(
                        customer_id=self._progress.customer_id,
                        revision=self._target,
                        progress=self._progress,
                        after_account_id=self._after,
                    )
                )

    def _show(self) -> None:
        """The progress in words, on the workflow's page in the Temporal UI."""
        p = self._progress
        workflow.set_current_details(f"revision {p.revision}: {p.done} of {p.total} done, {p.failed} failed")

    def _restart(self) -> None:
        """Begin the pass again for the newest revision: accounts already done may hold older values."""
        self._progress = RolloutProgress(
            customer_id=self._progress.customer_id,
            revision=self._target,
            restarts=self._progress.restarts + 1,
        )
        self._after = None

    async def _page(self) -> AccountPage:
        page = await workflow.execute_activity_method(
            RolloutActivities.list_rollout_accounts,
            AccountPageInput(
                customer_id=self._progress.customer_id,
                after_account_id=self._after,
                count_total=self._after is None,
            ),
            **DB_STEP,
        )
        if page.total is not None:
            self._progress.total = page.total
        return page
