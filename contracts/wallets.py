"""Inputs and results of the messaging policy rollout (messaging by wallet): ids only."""

from pydantic import BaseModel


def messaging_rollout_workflow_id(product_id: str) -> str:
    """One rollout per product at a time: a newer policy change restarts it from the first account."""
    return f"messaging-rollout-{product_id}"


class MessagingRolloutInput(BaseModel):
    product_id: str
    after_account_id: str | None = None  # carried over continue-as-new: where the next page starts
    signalled: int = 0


class MessagingRolloutResult(BaseModel):
    product_id: str
    signalled: int  # accounts whose workflow was told to push their current state


class ProductAccountsPage(BaseModel):
    product_id: str
    after_account_id: str | None
    limit: int


class ProductAccountsPageResult(BaseModel):
    signalled: int
    next_after_account_id: str | None  # None: that was the last page
