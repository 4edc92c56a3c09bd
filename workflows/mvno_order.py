"""An MVNO phone order, from the website's POST to an account the device can fetch."""

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from activities.provisioning import ProvisioningActivities
    from contracts.orders import (
        ORDER_NOT_FOUND,
        CompleteOrderInput,
        FailOrderInput,
        MvnoOrderInput,
        MvnoOrderResult,
        OrderRef,
    )
    from contracts.provisioning import AccountWorkflowInput, ProvisionAccountInput, account_workflow_id
    from contracts.search_attributes import ProvisioningState, search_attributes
    from contracts.workflows import MVNO_ORDER
    from workflows.account import AccountWorkflow
    from workflows.policies import DB_STEP, cmms_step
    from workflows.visibility import show

# The order hands the account to its own workflow when the account's wallet expires by itself.
WAKE_AT_WALLET_EXPIRY = "wake-at-wallet-expiry"


@workflow.defn(name=MVNO_ORDER.name)
class MvnoOrderWorkflow:
    """Create the billing account, provision the CMMS, complete the order (or roll it back)."""

    @workflow.run
    async def run(self, order: MvnoOrderInput) -> MvnoOrderResult:
        ref = OrderRef(order_id=order.order_id)
        try:
            account = await workflow.execute_activity_method(OrderActivities.create_order_account, ref, **DB_STEP)
            pushed = await workflow.execute_activity_method(
                ProvisioningActivities.provision_account,
                ProvisionAccountInput(account_id=account.account_id),
                **cmms_step(),
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type == ORDER_NOT_FOUND:
                raise ApplicationError(err.cause.message, type=ORDER_NOT_FOUND, non_retryable=True) from err
            reason = _reason(err)
            await workflow.execute_activity_method(
                OrderActivities.fail_order, FailOrderInput(order_id=order.order_id, reason=reason), **DB_STEP
            )
            show(ProvisioningState.failed)
            return MvnoOrderResult(order_id=order.order_id, account_id=None, status="failed", error=reason)
        completed = await workflow.execute_activity_method(
            OrderActivities.complete_order,
            CompleteOrderInput(order_id=order.order_id, pushed_customer_revision=pushed.customer_revision),
            **DB_STEP,
        )
        hand_over, wake_at = completed.customer_changed, None
        # A wallet that expires by itself (the product's initial one): the account's own workflow wakes then.
        if pushed.wake_at is not None and workflow.patched(WAKE_AT_WALLET_EXPIRY):
            hand_over, wake_at = True, pushed.wake_at
        if hand_over:
            await _hand_over_to_account_workflow(account.account_id, completed.customer_changed, wake_at)
        show(ProvisioningState.completed)
        return MvnoOrderResult(order_id=order.order_id, account_id=account.account_id, status="completed")


async def _hand_over_to_account_workflow(account_id: str, changed: bool, wake_at: datetime | None) -> None:
    """Have the account's own workflow push what changed while the order was provisioning, and wake when the
    account's wallet expires."""
    workflow_id = account_workflow_id(account_id)
    while True:
        try:
            await workflow.start_child_workflow(
                AccountWorkflow.run,
                AccountWorkflowInput(account_id=account_id, pending_changes=1 if changed else 0, wake_at=wake_at),
                id=workflow_id,
                search_attributes=search_attributes(state=ProvisioningState.pushing, account_id=account_id),
                parent_close_policy=ParentClosePolicy.ABANDON,  # it runs on by itself while it has work
            )
            return
        except WorkflowAlreadyStartedError:
            try:
                await workflow.get_external_workflow_handle_for(AccountWorkflow.run, workflow_id).signal(
                    AccountWorkflow.changed
                )
                return
            except FailureError:
                # It ended, idle, between the start refused and the signal: start it again.
                continue


def _reason(err: ActivityError) -> str:
    """The business reason in words: the activity's ApplicationError message."""
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)
