"""Billing-side steps of the MVNO order: create the account, then complete or roll back the order."""

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.business_metrics import order_finished
from billing.credentials import new_sip_password
from billing.db import SessionMaker, transaction
from billing.models import Account, AccountStatus, Customer, Order, OrderStatus, Product, utcnow
from billing.uniqueness import imei_taken
from billing.wallets import discard_account, open_initial_wallet
from contracts.orders import (
    ORDER_NOT_FOUND,
    CompletedOrder,
    CompleteOrderInput,
    FailOrderInput,
    OrderAccount,
    OrderRef,
    order_origin,
)

# The ApplicationError type when an order's account id or IMEI is taken by another account.
ACCOUNT_CONFLICT = "AccountConflict"


class OrderActivities:
    def __init__(self, sessions: SessionMaker) -> None:
        self._sessions = sessions

    @activity.defn(name="create_order_account")
    async def create_order_account(self, ref: OrderRef) -> OrderAccount:
        """Create the order's billing account (pending until the CMMS has it) with its messaging wallet (the one
        held on the order, else the product's initial wallet); safe to repeat."""
        try:
            return await self._create_order_account(ref)
        except IntegrityError as err:
            if not imei_taken(err):
                raise
            # A live account took the IMEI after the check above (the database holds the rule).
            raise ApplicationError("the IMEI is already in use", type=ACCOUNT_CONFLICT, non_retryable=True) from None

    async def _create_order_account(self, ref: OrderRef) -> OrderAccount:
        origin = order_origin(ref.order_id)
        # The order and both checks in one query: the fewer statements, the shorter SQLite's write lock is held.
        account_creator = select(Account.created_by).where(Account.account_id == Order.account_id)
        imei_holder = select(Account.account_id).where(
            Account.imei == Order.imei, col(Account.status) != AccountStatus.terminated
        )
        query = select(Order, account_creator.scalar_subquery(), imei_holder.limit(1).scalar_subquery())
        async with transaction(self._sessions) as session:
            found = (await session.exec(query.where(Order.order_id == ref.order_id).with_for_update(of=Order))).first()
            if found is None:  # only a hand-started run can get here: the API stores the order first
                raise ApplicationError(f"order {ref.order_id} does not exist", type=ORDER_NOT_FOUND, non_retryable=True)
            order, creator, holder = found
            if creator == origin:
                return OrderAccount(order_id=order.order_id, account_id=order.account_id)
            if creator is not None:
                raise ApplicationError(
                    f"account id {order.account_id} is already in use",
                    type=ACCOUNT_CONFLICT,
                    non_retryable=True,
                )
            if holder is not None:
                raise ApplicationError(
                    f"IMEI {order.imei} already belongs to account {holder}",
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
            product = await session.get_one(Product, order.product_id)
            await open_initial_wallet(session, order.account_id, product, utcnow(), order.held_wallet)
            order.held_wallet = None  # the wallet holds it now
            order.requested_password = None  # the account holds it now; keep one copy only
            order.status = OrderStatus.provisioning
            order.updated_at = utcnow()
            session.add(order)
        return OrderAccount(order_id=order.order_id, account_id=order.account_id)

    @activity.defn(name="complete_order")
    async def complete_order(self, request: CompleteOrderInput) -> CompletedOrder:
        """The account goes live; says whether its customer changed since the CMMS was provisioned."""
        # One read and two plain UPDATEs: the fewer statements, the shorter SQLite's write lock is held.
        async with transaction(self._sessions) as session:
            account_id, revision = (
                await session.exec(
                    select(Order.account_id, Customer.revision)
                    .join(Customer, col(Customer.customer_id) == col(Order.customer_id))
                    .where(Order.order_id == request.order_id)
                )
            ).one()
            now = utcnow()
            completed = {"status": OrderStatus.completed, "error": None, "updated_at": now}
            await session.exec(update(Order).where(col(Order.order_id) == request.order_id).values(completed))
            live = (col(Account.account_id) == account_id) & (col(Account.status) == AccountStatus.pending)
            await session.exec(update(Account).where(live).values(status=AccountStatus.active, updated_at=now))
        order_finished("completed")
        changed = request.pushed_customer_revision not in (None, revision)
        return CompletedOrder(account_id=account_id, customer_changed=changed)

    @activity.defn(name="fail_order")
    async def fail_order(self, failure: FailOrderInput) -> None:
        """Roll back: the account never went live, so it is deleted; the order keeps the reason."""
        origin = order_origin(failure.order_id)
        async with transaction(self._sessions) as session:
            order = await session.get_one(Order, failure.order_id, with_for_update=True)
            await discard_account(session, order.account_id, origin)
            order.status = OrderStatus.failed
            order.requested_password = None
            order.error = failure.reason[:1000]
            order.updated_at = utcnow()
            session.add(order)
        order_finished("failed")
