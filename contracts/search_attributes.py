"""Search attributes: what ops filter workflows by in the Temporal UI's search box.

Business keys, a state and counts only, never a secret or personal data: an order id, a customer id,
an account id, where the workflow stands (`ProvisioningState`), and what a reconciliation found
(`DriftFound`, `RepairsFailed`). The API sets them when it starts a workflow; the workflows keep
`ProvisioningState` (and the ids they learn later) current. `make run` and the test servers register
them; `python -m core.register_search_attributes` registers them on another Temporal server.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
PROVISIONING_STATE = SearchAttributeKey.for_keyword("ProvisioningState")

# A reconciliation's findings: accounts whose CMMS record was missing, different or orphaned, and
# repairs that failed (Int, so `DriftFound > 0` finds the runs that found something).
DRIFT_FOUND = SearchAttributeKey.for_int("DriftFound")
REPAIRS_FAILED = SearchAttributeKey.for_int("RepairsFailed")
# A bulk import's id, on its workflow (`ImportId = "…"` finds it), and the rows it has left to provision
# (Int, so `ImportRowsLeft > 0` finds the imports still at work).
IMPORT_ID = SearchAttributeKey.for_keyword("ImportId")
IMPORT_ROWS_LEFT = SearchAttributeKey.for_int("ImportRowsLeft")

ALL_KEYS: Sequence[SearchAttributeKey[Any]] = (
    ORDER_ID,
    CUSTOMER_ID,
    ACCOUNT_ID,
    PROVISIONING_STATE,
    DRIFT_FOUND,
    REPAIRS_FAILED,
    IMPORT_ID,
    IMPORT_ROWS_LEFT,
)


class ProvisioningState(StrEnum):
    """The values of the `ProvisioningState` search attribute (where a workflow stands), one vocabulary for
    every workflow type. Not billing's `PushStatus` (where an account stands with the CMMS)."""

    provisioning = "provisioning"  # an order or a verified signup: its account is on its way to the CMMS
    completed = "completed"  # an order or a rollout that finished its work
    failed = "failed"  # an order the CMMS refused for good (the reason is its result), a signup that failed
    pushing = "pushing"  # an account's workflow is bringing the CMMS in line (waits out an outage)
    in_sync = "in_sync"  # the CMMS holds the account as billing had it at the last push
    refused = "refused"  # the CMMS refused the account's last push for good (the `last_error` query says why)
    removed = "removed"  # the account is terminated and gone from the CMMS
    pending = "pending"  # a signup waiting for its code
    verified = "verified"  # a signup whose account exists
    expired = "expired"  # a signup whose code expired unused
    rolling_out = "rolling_out"  # a rollout walking its accounts
    reconciling = "reconciling"  # a reconciliation comparing billing with the CMMS and repairing drift
    held = "held"  # a reconciliation that found too many orphans to delete unasked: an operator confirms
    importing = "importing"  # a bulk import provisioning (or adopting) its accounts


def search_attributes(
    *,
    state: ProvisioningState,
    order_id: str | None = None,
    customer_id: str | None = None,
    account_id: str | None = None,
) -> TypedSearchAttributes:
    """The attributes a workflow starts with: its state and the business keys it already knows."""
    pairs: list[SearchAttributePair[str]] = [SearchAttributePair(PROVISIONING_STATE, state)]
    for key, value in ((ORDER_ID, order_id), (CUSTOMER_ID, customer_id), (ACCOUNT_ID, account_id)):
        if value is not None:
            pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)
