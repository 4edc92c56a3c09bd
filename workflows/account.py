"""One workflow per account keeps its CMMS record in line with billing, running only while it has work.

Every change to an account, or to what it depends on (its customer's profile and domain, its
wallet), signals `changed` or calls the `sync` update. The workflow pushes the *current* desired
state, one push at a time: changes reach the CMMS in the order they were made, a burst of changes
coalesces into one push, and a stale value can never overwrite a newer one.

An account with nothing left to do (in sync, no change asked for, no update waiting, nothing due by the
clock) ends its run instead of waiting: an idle subscriber holds no Temporal memory. The next change starts
it again through the same signal-with-start (or update-with-start) that reached it while it ran; Temporal
runs one execution per workflow id, so there is still one writer. An account with a timer (a wallet lot
that expires, an expiration date) due within the idle-timer horizon, or whose last push was refused, keeps
waiting, as before; one due later ends too, and the worker's wake sweep starts it again, with a timer, once
the wake-up comes within the horizon.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.provisioning import ProvisioningActivities
    from contracts.provisioning import (
        AccountSyncResult,
        AccountWorkflowInput,
        ProvisionAccountInput,
        ProvisionAccountResult,
    )
    from contracts.search_attributes import ProvisioningState
    from contracts.workflows import ACCOUNT, ACCOUNT_CHANGED, ACCOUNT_LAST_ERROR, ACCOUNT_SYNC
    from workflows import handlers
    from workflows.policies import cmms_step
    from workflows.visibility import show

# Continue-as-new well before the history grows large (Temporal warns at 10,240 events).
MAX_PUSHES_PER_RUN = 200
# The versioned change that lets a run end once idle; histories recorded before it wait for ever, and replay so.
ENDS_WHEN_IDLE = "account-ends-when-idle"


@workflow.defn(name=ACCOUNT.name)
class AccountWorkflow:
    @workflow.init
    def __init__(self, start: AccountWorkflowInput) -> None:
        self._account_id = start.account_id
        self._requested = start.pending_changes  # changes asked for so far in this run
        self._pushed = 0  # changes the CMMS has seen, counted the same way
        self._wake_at = start.wake_at
        self._last: ProvisionAccountResult | None = None
        self._last_error: str | None = None

    @workflow.signal(name=ACCOUNT_CHANGED.name)
    def changed(self) -> None:
        """Billing changed something the CMMS holds: push the current state soon."""
        self._requested += 1

    @handlers.update(ACCOUNT_SYNC)
    async def sync(self) -> AccountSyncResult:
        """Push the current state and answer once the CMMS holds it (or the account is gone)."""
        self._requested += 1
        ticket = self._requested
        await workflow.wait_condition(lambda: self._pushed >= ticket)
        last = self._last
        return AccountSyncResult(
            account_id=self._account_id,
            cmms_version=last.cmms_version if last else None,
            removed=bool(last and last.removed),
        )

    @workflow.query(name=ACCOUNT_LAST_ERROR.name)
    def last_error(self) -> str | None:
        return self._last_error

    @workflow.run
    async def run(self, start: AccountWorkflowInput) -> ProvisionAccountResult | None:
        pushes = 0
        while True:
            if not await self._wait_for_work():
                self._requested += 1  # woken by the clock: the desired state changed by itself
            ticket = self._requested
            show(ProvisioningState.pushing)
            try:
                self._last = await workflow.execute_activity_method(
                    ProvisioningActivities.provision_account,
                    ProvisionAccountInput(account_id=self._account_id, as_of=workflow.now()),
                    **cmms_step(),
                )
                self._last_error = None
                self._wake_at = self._last.wake_at
                show(
                    ProvisioningState.removed if self._last.removed else ProvisioningState.in_sync,
                    customer_id=self._last.customer_id,
                )
            except ActivityError as err:
                # A refusal for good (an unknown profile, say): billing shows it on the account; the
                # next change tries again. The run stays, answering `last_error`, until then.
                self._last_error = str(err.cause or err)
                show(ProvisioningState.refused)
            self._pushed = ticket
            pushes += 1
            if self._last is not None and self._last.removed:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._last
            if self._idle() and workflow.patched(ENDS_WHEN_IDLE):
                # An update answered by this push finishes first; a change or update arriving meanwhile
                # keeps the run going. One arriving after this task completes makes Temporal refuse the
                # completion and hand the workflow a new task with it (a signal or update is never lost).
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() or not self._idle())
                if self._idle():
                    return self._last
                continue
            if pushes >= MAX_PUSHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    AccountWorkflowInput(
                        account_id=self._account_id,
                        pending_changes=max(0, self._requested - self._pushed),
                        wake_at=self._wake_at,
                    )
                )

    def _idle(self) -> bool:
        """In sync with nothing asked for, no refusal to show, and nothing due by the clock that a sweep
        would not wake in time (a wake-up beyond the idle-timer horizon)."""
        return (
            self._requested <= self._pushed
            and self._last_error is None
            and self._last is not None
            and (self._wake_at is None or self._last.wake_swept)
        )

    async def _wait_for_work(self) -> bool:
        """Wait for a change, or until the desired state changes by itself; False when the clock woke us."""
        timeout: timedelta | None = None
        if self._wake_at is not None:
            timeout = max(self._wake_at - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(lambda: self._requested > self._pushed, timeout=timeout)
        except TimeoutError:
            return False
        return True
