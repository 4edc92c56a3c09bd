"""Inputs and results of the MVNO order workflow and its activities: ids only, never secrets."""

from pydantic import BaseModel

# The ApplicationError type of a run started for an order billing does not have: the run fails.
ORDER_NOT_FOUND = "OrderNotFound"


def order_workflow_id(order_id: str) -> str:
    """The order's workflow id: a business key, so a repeated order never provisions twice."""
    return f"order-{order_id}"


def order_origin(order_id: str) -> str:
    """What an account created by the order records in `created_by`."""
    return f"order:{order_id}"


class MvnoOrderInput(BaseModel):
    order_id: str


class MvnoOrderResult(BaseModel):
    order_id: str
    account_id: str | None
    status: str  # the final OrderStatus: completed or failed
    error: str | None = None


class OrderRef(BaseModel):
    order_id: str


class OrderAccount(BaseModel):
    order_id: str
    account_id: str


class FailOrderInput(BaseModel):
    order_id: str
    reason: str


class CompleteOrderInput(BaseModel):
    order_id: str
    pushed_customer_revision: int | None = None  # the customer values the CMMS got while provisioning


class CompletedOrder(BaseModel):
    account_id: str
    # The customer changed after the CMMS was provisioned (a rollout skips accounts still pending):
    # the account's workflow must push the newer values.
    customer_changed: bool
