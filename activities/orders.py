"""Billing-side steps of the MVNO order: create the account, then complete or roll back the order."""

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from billing.credentials import new_sip_password
from billing.db import FOR_CHANGE, SessionMaker, transaction
from billing.models import Account, AccountStatus, Customer, Order, OrderStatus, utcnow
from contracts.orders import (
    ORDER_NOT_FOUND,
    CompletedOrder,
    CompleteOrderInput,
    FailOrderInput,
    OrderAccount,
    OrderRef,
)

# The ApplicationError type when an order's account id or IMEI is taken by another account.
ACCOUNT_CONFLICT = "AccountConflict"


class OrderActivities:
    def __init__(self, sessions: SessionMaker) -> None:
        self._sessions = sessions

    @activity.defn(name="create_order_account")
    async def create_order_account(self, ref: OrderRef) -> OrderAccount:
        """Create the order's billing account (pending until the CMMS has it); safe to repeat."""
        origin = f"order:{ref.order_id}"
        async with transaction(self._sessions) as session:
            order = await session.get(Order, ref.order_id, with_for_update=True)
            if order is None:  # only a hand-started run can get here: the API stores the order first
                raise ApplicationError(f"order {ref.order_id} does not exist", type=ORDER_NOT_FOUND, non_retryable=True)
            existing = await session.get(Account, order.account_id)
            if existing is not None:
                if existing.created_by == origin:
                    return OrderAccount(order_id=order.order_id, account_id=existing.account_id)
                raise ApplicationError(
                    f"account id {order.account_id} is already in use",
                    type=ACCOUNT_CONFLICT,
                    non_retryable=True,
                )
            imei_holder = (
                await session.exec(
                    select(Account.account_id).where(
                        Account.imei == order.imei, col(Account.status) != AccountStatus.terminated
                    )
                )
            ).first()
            if imei_holder is not None:
                raise ApplicationError(
                    f"IMEI {order.imei} already belongs to account {imei_holder}",
                    type=ACCOUNT_CONFLICT,
                    non_retryable=True,
                )
            session.add(
                Account(
                    account_id=order.account_id,
                    customer_id=order.customer_id,
                    product_id=order.product_id,
                    imei=order.imei,
                    sip_password=order.requested_password or new_sip_password(),
                    created_by=origin,
                )
            )
            order.requested_password = None  # the account holds it now; keep one copy only
            order.status = OrderStatus.provisioning
            order.updated_at = utcnow()
            session.add(order)
        return OrderAccount(order_id=order.order_id, account_id=order.account_id)

    @activity.defn(name="complete_order")
    async def complete_order(self, request: CompleteOrderInput) -> CompletedOrder:
        """The account goes live; says whether its customer changed since the CMMS was provisioned."""
        async with transaction(self._sessions) as session:
            order = await session.get_one(Order, request.order_id, with_for_update=True)
            account = await session.get_one(Account, order.account_id, with_for_update=FOR_CHANGE)
            customer = await session.get_one(Customer, order.customer_id)
            if account.status == AccountStatus.pending:
                account.status = AccountStatus.active
                account.updated_at = utcnow()
                session.add(account)
            order.status = OrderStatus.completed
            order.error = None
            order.updated_at = utcnow()
            session.add(order)
        changed = request.pushed_customer_revision not in (None, customer.revision)
        return CompletedOrder(account_id=account.account_id, customer_changed=changed)

    @activity.defn(name="fail_order")
    async def fail_order(self, failure: FailOrderInput) -> None:
        """Roll back: the account never went live, so it is deleted; the order keeps the reason."""
        origin = f"order:{failure.order_id}"
        async with transaction(self._sessions) as session:
            order = await session.get_one(Order, failure.order_id, with_for_update=True)
            account = await session.get(Account, order.account_id, with_for_update=True)
            if account is not None and account.created_by == origin and account.status == AccountStatus.pending:
                await session.delete(account)
            order.status = OrderStatus.failed
            order.requested_password = None
            order.error = failure.reason[:1000]
            order.updated_at = utcnow()
            session.add(order)
