"""The one provisioning step every use case shares: bring the CMMS in line with an account."""

from datetime import datetime, timedelta

from pydantic import BaseModel

# The ApplicationError type of a permanent CMMS refusal (a 4xx): never retried.
CMMS_REJECTED = "CmmsRejected"
# ... and of a provisioning request for an account billing does not have.
ACCOUNT_NOT_FOUND = "AccountNotFound"
# ... and of an account whose billing data the CMMS can never take (beside PortaBilling: an IMEI field
# that is not 15 digits): failed, like a CMMS refusal, until billing changes.
BILLING_REFUSED = "BillingRefused"
# The longest wait between two tries at an unavailable CMMS, even when it asks for more (Retry-After):
# a CMMS that comes back is used within seconds.
CMMS_MAX_RETRY_INTERVAL = timedelta(seconds=5)


class ProvisionAccountInput(BaseModel):
    account_id: str
    # The caller's clock (the workflow's `workflow.now()`), for decisions that depend on time (a wallet
    # expiring): under a time-skipping test server it runs ahead of the wall clock.
    as_of: datetime | None = None


class ProvisionAccountResult(BaseModel):
    account_id: str
    customer_id: str | None = None  # None once the account is removed
    cmms_version: int | None  # None once the account is removed from the CMMS
    removed: bool = False  # the account is terminated and no longer in the CMMS
    # When the desired state or the wallet will change by itself (a top-up's units expiring): the account's
    # workflow wakes then.
    wake_at: datetime | None = None
    # A sweep wakes the account before `wake_at` (it is beyond the idle-timer horizon): its workflow may
    # end rather than keep a timer.
    wake_swept: bool = False
    # The revision of the customer values pushed: an order compares it when it completes.
    customer_revision: int | None = None


def account_workflow_id(account_id: str) -> str:
    """One workflow per account keeps its CMMS record in line: a business key, like the order's."""
    return f"account-{account_id}"


class AccountWorkflowInput(BaseModel):
    account_id: str
    pending_changes: int = 0  # carried over continue-as-new
    wake_at: datetime | None = None


class AccountSyncResult(BaseModel):
    """Answer of the `sync` update: the CMMS holds the state billing had when the update arrived."""

    account_id: str
    cmms_version: int | None
    removed: bool
