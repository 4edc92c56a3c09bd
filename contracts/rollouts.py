"""Inputs and results of a customer's rollout (customized provisioning): ids and counters only, never secrets."""

from typing import Literal

from pydantic import BaseModel


def rollout_workflow_id(customer_id: str) -> str:
    """One rollout per customer at a time: a newer change restarts it rather than racing it."""
    return f"rollout-{customer_id}"


class RolloutChange(BaseModel):
    """Signal `changed`: the customer now has `revision`; every account must get it."""

    revision: int


class RolloutProgress(BaseModel):
    """Where a rollout stands: shown by the API, queried from the workflow, carried over continue-as-new."""

    customer_id: str
    revision: int  # the customer revision this pass pushes (or a newer one: pushes read billing's current state)
    status: Literal["running", "completed"] = "running"
    total: int = 0  # accounts to re-provision, counted when the pass started
    done: int = 0  # re-provisioned: the CMMS holds the state billing had when their push began
    failed: int = 0  # the CMMS refused them for good; each account shows why
    restarts: int = 0  # passes begun again because a newer change came in


class CustomerRolloutInput(BaseModel):
    customer_id: str
    revision: int
    # Set only by continue-as-new: the pass in progress and where it stands.
    progress: RolloutProgress | None = None
    after_account_id: str | None = None


class AccountPageInput(BaseModel):
    customer_id: str
    after_account_id: str | None = None  # keyset pagination: the page starts after this id
    count_total: bool = False


class AccountPage(BaseModel):
    account_ids: list[str]
    next_after: str | None  # None: this was the last page
    total: int | None  # the customer's accounts to roll out, when asked for
    customer_revision: int  # billing's current revision, so a rollout notices a change it was not told of


class SyncAccountsInput(BaseModel):
    customer_id: str
    account_ids: list[str]


class SyncAccountsResult(BaseModel):
    done: int
    failed: int
