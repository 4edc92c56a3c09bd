"""MVNO orders from the provider's website (use case 1): admission, and the order's own view.

An order is admitted in one transaction with the outbox record that starts its workflow, so a stored
order is always started: right after the commit, or by the outbox relay once Temporal answers.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import ScalarSelect
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from billing.credentials import new_account_id
from billing.db import snapshot
from billing.messaging import starting_messaging
from billing.models import (
    Account,
    AccountStatus,
    Customer,
    MessagingState,
    Order,
    OrderStatus,
    OutboxKind,
    Product,
    ProvisioningState,
)
from contracts.orders import order_workflow_id
from core.settings import Settings
from services.errors import Conflict, unknown_reference
from services.outbox import Outbox
from services.rows import get

T = TypeVar("T")


@dataclass(frozen=True)
class OrderRequest:
    order_id: str
    customer_id: str
    product_id: str
    imei: str
    account_id: str | None = None
    password: str | None = None  # the website's choice; generated when None


@dataclass(frozen=True)
class OrderView:
    """An order with where its own provisioning stands."""

    order: Order
    provisioning_state: ProvisioningState | None
    error: str | None
    # How the account's messaging starts (active with a wallet that holds units, suspended without one) or,
    # once the CMMS confirmed it, stands; None where the product leaves messaging to the CMMS.
    messaging: MessagingState | None


async def submit_order(outbox: Outbox, settings: Settings, request: OrderRequest) -> tuple[OrderView, bool]:
    """The order as stored, and whether this request created it. The same order again answers what it is;
    the same `order_id` with other content is a conflict."""
    fingerprint = _fingerprint(settings, request)
    created = False
    try:
        async with outbox.transaction() as tx:
            found = await _lookup(tx.session, request)
            if found.order is None:
                _refuse_conflicts(request, found)
                order = Order(
                    order_id=request.order_id,
                    customer_id=request.customer_id,
                    product_id=request.product_id,
                    account_id=request.account_id or new_account_id(),
                    imei=request.imei,
                    requested_password=request.password,
                    fingerprint=fingerprint,
                    workflow_id=order_workflow_id(request.order_id),
                )
                tx.session.add(order)
                tx.tell(OutboxKind.order, order.order_id)
                created = True
    except IntegrityError:  # the same order_id, submitted concurrently: answered as a repeat below
        created = False
    if created:  # as just written: its account does not exist yet
        return OrderView(order, None, None, starting_messaging(found.product or {})), True
    view = await get_order(outbox, request.order_id)
    if not hmac.compare_digest(view.order.fingerprint, fingerprint):
        raise Conflict(f"order {request.order_id!r} already exists with different content")
    return view, False


async def get_order(outbox: Outbox, order_id: str) -> OrderView:
    async with snapshot(outbox.sessions) as session:
        order = await get(session, Order, order_id, "order")
        account = await session.get(Account, order.account_id)
        product = await session.get_one(Product, order.product_id)
    error = order.error
    if error is None and account is not None and account.provisioning_state == ProvisioningState.retry:
        error = account.last_error
    messaging = starting_messaging(product.service_policies, order.held_wallet)
    if account is not None and account.messaging_state is not None:
        messaging = MessagingState(account.messaging_state)  # as the CMMS confirmed it since
    return OrderView(order, account.provisioning_state if account else None, error, messaging)


class _Lookup(NamedTuple):
    """What the database holds that an order's admission depends on (None: nothing)."""

    order: str | None  # this order, submitted before
    customer: str | None
    product: dict[str, Any] | None  # the product's service policies
    account: str | None  # an account with the requested account id
    imei_account: str | None  # a live account with the IMEI
    imei_order: str | None  # another order provisioning the IMEI


async def _lookup(session: AsyncSession, request: OrderRequest) -> _Lookup:
    """Every check in one query, so SQLite's write lock is held for two statements and a commit."""

    def first(query: SelectOfScalar[T]) -> ScalarSelect[T]:
        return query.limit(1).scalar_subquery()

    imei = request.imei
    query = sa.select(  # sqlmodel's `select` takes at most four columns
        first(select(Order.order_id).where(Order.order_id == request.order_id)),
        first(select(Customer.customer_id).where(Customer.customer_id == request.customer_id)),
        first(select(Product.service_policies).where(Product.product_id == request.product_id)),
        first(select(Account.account_id).where(Account.account_id == request.account_id)),
        first(select(Account.account_id).where(Account.imei == imei, col(Account.status) != AccountStatus.terminated)),
        first(
            select(Order.order_id).where(
                Order.imei == imei, col(Order.status).in_([OrderStatus.accepted, OrderStatus.provisioning])
            )
        ),
    )
    order, customer, policies, account, imei_account, imei_order = (
        await (await session.connection()).execute(query)
    ).one()
    return _Lookup(order, customer, dict(policies) if policies is not None else None, account, imei_account, imei_order)


def _refuse_conflicts(request: OrderRequest, found: _Lookup) -> None:
    """Refused for an unknown reference, or an account id or IMEI already taken."""
    if found.customer is None:
        raise unknown_reference("customer_id", "customer", request.customer_id)
    if found.product is None:
        raise unknown_reference("product_id", "product", request.product_id)
    if found.account is not None:
        raise Conflict(f"account {request.account_id!r} already exists")
    if found.imei_account is not None:
        raise Conflict(f"IMEI {request.imei} already belongs to an account")
    if found.imei_order is not None:
        raise Conflict(f"IMEI {request.imei} is being provisioned by order {found.imei_order!r}")


def _fingerprint(settings: Settings, request: OrderRequest) -> str:
    """A keyed hash of the whole request: tells a repeat from a conflict without keeping the password."""
    canonical = {
        "order_id": request.order_id,
        "customer_id": request.customer_id,
        "product_id": request.product_id,
        "account": {"imei": request.imei, "account_id": request.account_id, "password": request.password},
    }
    message = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(settings.secret_key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()
