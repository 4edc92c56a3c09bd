"""Keep a workflow's search attributes current, so ops find it in the Temporal UI by what it is doing."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.search_attributes import ACCOUNT_ID, CUSTOMER_ID, PROVISIONING_STATE, ProvisioningState


def show(state: ProvisioningState, *, customer_id: str | None = None, account_id: str | None = None) -> None:
    """Set `ProvisioningState` (and the ids given) where they differ from what the workflow shows:
    an unchanged value costs no history event."""
    shown = workflow.info().typed_search_attributes
    wanted = ((PROVISIONING_STATE, state.value), (CUSTOMER_ID, customer_id), (ACCOUNT_ID, account_id))
    updates = [key.value_set(value) for key, value in wanted if value is not None and shown.get(key) != value]
    if updates:
        workflow.upsert_search_attributes(updates)
