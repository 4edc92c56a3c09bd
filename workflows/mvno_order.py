"""Use case 1: an MVNO phone order, from the website's POST to an account the device can fetch."""

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from activities.provisioning import ProvisioningActivities
    from contracts.orders import ORDER_NOT_FOUND, FailOrderInput, MvnoOrderInput, MvnoOrderResult, OrderRef
    from contracts.provisioning import ProvisionAccountInput
    from workflows.policies import DB_STEP, cmms_step


@workflow.defn
class MvnoOrderWorkflow:
    """Create the billing account, provision the CMMS, complete the order (or roll it back)."""

    @workflow.run
    async def run(self, order: MvnoOrderInput) -> MvnoOrderResult:
        ref = OrderRef(order_id=order.order_id)
        try:
            account = await workflow.execute_activity_method(OrderActivities.create_order_account, ref, **DB_STEP)
            await workflow.execute_activity_method(
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
            return MvnoOrderResult(order_id=order.order_id, account_id=None, status="failed", error=reason)
        await workflow.execute_activity_method(OrderActivities.complete_order, ref, **DB_STEP)
        return MvnoOrderResult(order_id=order.order_id, account_id=account.account_id, status="completed")


def _reason(err: ActivityError) -> str:
    """The business reason in words: the activity's ApplicationError message."""
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)
