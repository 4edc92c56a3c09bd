"""After a product's messaging policy changes, tell each of its accounts' workflows to push their state.

Pages of accounts, one activity each, so the fan-out is bounded however many accounts there are;
continue-as-new keeps the history short. The account workflows do the CMMS writes, one account at a time.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.wallets import MessagingRolloutActivities
    from contracts.search_attributes import ProvisioningState
    from contracts.wallets import MessagingRolloutInput, MessagingRolloutResult, ProductAccountsPage
    from contracts.workflows import MESSAGING_ROLLOUT
    from workflows.policies import DB_STEP
    from workflows.visibility import show

PAGE_SIZE = 500
PAGES_PER_RUN = 100


@workflow.defn(name=MESSAGING_ROLLOUT.name)
class MessagingRolloutWorkflow:
    @workflow.run
    async def run(self, start: MessagingRolloutInput) -> MessagingRolloutResult:
        after, signalled = start.after_account_id, start.signalled
        for _ in range(PAGES_PER_RUN):
            page = await workflow.execute_activity_method(
                MessagingRolloutActivities.signal_product_accounts,
                ProductAccountsPage(product_id=start.product_id, after_account_id=after, limit=PAGE_SIZE),
                **(DB_STEP | {"start_to_close_timeout": timedelta(minutes=5)}),
                heartbeat_timeout=timedelta(seconds=60),
            )
            signalled += page.signalled
            if page.next_after_account_id is None:
                show(ProvisioningState.completed)
                return MessagingRolloutResult(product_id=start.product_id, signalled=signalled)
            after = page.next_after_account_id
        workflow.continue_as_new(
            MessagingRolloutInput(product_id=start.product_id, after_account_id=after, signalled=signalled)
        )
