"""MVNO orders from the provider's website: admission, and the order's own view.

An order is admitted in one transaction with the outbox record that starts its workflow, so a stored
order is always started: right after the commit, or by the outbox relay once Temporal answers.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from pydantic import SecretStr
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
    Product,
    PushStatus,
)
from billing.uniqueness import imei_taken
from contracts.orders import order_origin, order_workflow_id
from services.errors import Conflict, Invalid, NotFound, unknown_reference
from services.outbox import Outbox
from services.pagination import KeysetPage, PageRequest, page
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
    key_name: str | None = None  # the name of the API key that sends it, kept on the order


@dataclass(frozen=True)
class OrderView:
    """An order with where its own provisioning stands."""

    order: Order
    provisioning_state: PushStatus | None
    error: str | None
    # How the account's messaging starts (active with a wallet that holds units, suspended without one) or,
    # once the CMMS confirmed it, stands; None where the product leaves messaging to the CMMS.
    messaging: MessagingState | None


async def submit_order(
    outbox: Outbox, secret_key: SecretStr, request: OrderRequest, *, ott_customer_id: str, owner: str | None
) -> tuple[OrderView, bool]:
    """The order as stored, and whether this request created it. The same order again answers what it is;
    the same `order_id` with other content, or (`owner` given) another key's order, is a conflict.

    `owner`: the key name whose orders alone the caller sees (None: every order). Orders for the OTT
    customer are refused: its accounts are the numbers' own, made by the signups that verify them; an
    order could otherwise make one under a number's digits, with its own IMEI, before the number's owner
    signs up."""
    if request.customer_id == ott_customer_id:
        raise Invalid(
            f"customer {ott_customer_id!r} is the app's self-signup customer: its accounts are made by signups only",
            [{"field": "customer_id", "message": "only signups make accounts of this customer", "type": "signup_only"}],
        )
    fingerprint = _fingerprint(secret_key, request)
    created = False
    try:
        async with outbox.transaction() as tx:
            found = await _lookup(tx.session, request)
            if found.order is None:
                _refuse_conflicts(request, found, owner)
                order = Order(
                    order_id=request.order_id,
                    customer_id=request.customer_id,
                    product_id=request.product_id,
                    account_id=request.account_id or new_account_id(),
                    imei=request.imei,
                    requested_password=request.password,
                    fingerprint=fingerprint,
                    workflow_id=order_workflow_id(request.order_id),
                    key_name=request.key_name,
                )
                tx.session.add(order)
                tx.start_order(order)
                created = True
    except IntegrityError as err:
        if not await _exists(outbox, request.order_id):
            if imei_taken(err):  # another order for the IMEI, admitted since the lookup: the database decides
                raise Conflict(f"IMEI {request.imei} is already in use") from None
            raise
        created = False  # the same order_id, submitted concurrently: answered as a repeat below
    if created:  # as just written: its account does not exist yet
        return OrderView(order, None, None, starting_messaging(found.product or {})), True
    view = await get_order(outbox, request.order_id, owner=None)
    if owner is not None and view.order.key_name != owner:  # tells nothing of the other key's order
        raise Conflict(f"order_id {request.order_id!r} is already taken")
    if not hmac.compare_digest(view.order.fingerprint, fingerprint):
        raise Conflict(f"order {request.order_id!r} already exists with different content")
    return view, False


@dataclass(frozen=True)
class OrderFilter:
    """What a list of orders is narrowed to; None: any."""

    customer_id: str | None = None
    status: OrderStatus | None = None
    created_since: datetime | None = None  # created at or after
    account_id: str | None = None


async def get_order(outbox: Outbox, order_id: str, *, owner: str | None) -> OrderView:
    """The order, if the caller may see it: `owner` given, only that key name's orders exist for it."""
    async with snapshot(outbox.sessions) as session:
        order = await get(session, Order, order_id, "order")
        if owner is not None and order.key_name != owner:
            raise NotFound(f"order {order_id!r} does not exist")
        account = await session.get(Account, order.account_id)
        product = await session.get_one(Product, order.product_id)
    return _view(order, account, product)


async def list_orders(
    outbox: Outbox, where: OrderFilter, request: PageRequest, *, owner: str | None
) -> KeysetPage[OrderView]:
    """Orders oldest first, each with where its provisioning stands; `owner` given, only that key name's."""
    query = select(Order)
    if owner is not None:
        query = query.where(Order.key_name == owner)
    if where.customer_id is not None:
        query = query.where(Order.customer_id == where.customer_id)
    if where.status is not None:
        query = query.where(Order.status == where.status)
    if where.account_id is not None:
        query = query.where(Order.account_id == where.account_id)
    if where.created_since is not None:
        query = query.where(col(Order.created_at) >= where.created_since)
    async with snapshot(outbox.sessions) as session:
        found = await page(session, query, Order, "order_id", "orders", request)
        ids = [order.account_id for order in found.items]
        rows = await session.exec(select(Account).where(col(Account.account_id).in_(ids)))
        accounts = {account.account_id: account for account in rows.all()}
        wanted = {order.product_id for order in found.items}
        listed = await session.exec(select(Product).where(col(Product.product_id).in_(wanted)))
        products = {product.product_id: product for product in listed.all()}
    return KeysetPage(
        [_view(order, accounts.get(order.account_id), products[order.product_id]) for order in found.items],
        found.next,
    )


def _view(order: Order, account: Account | None, product: Product) -> OrderView:
    """The order with its own outcome: the account's provisioning state only while the account is the one
    this order created (a failed order's account id is free for a corrected order to reuse)."""
    if account is not None and account.created_by != order_origin(order.order_id):
        account = None
    error = order.error
    messaging = starting_messaging(product.service_policies, order.held_wallet)
    if account is not None and account.messaging_state is not None:
        messaging = MessagingState(account.messaging_state)  # as the CMMS confirmed it since
    if order.status == OrderStatus.failed:
        return OrderView(order, PushStatus.failed, error, messaging)
    state = account.provisioning_state if account else None
    if error is None and account is not None and state == PushStatus.retry:
        error = account.last_error
    return OrderView(order, state, error, messaging)


async def _exists(outbox: Outbox, order_id: str) -> bool:
    async with snapshot(outbox.sessions) as session:
        return await session.get(Order, order_id) is not None


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
        first(
            select(Customer.customer_id).where(
                Customer.customer_id == request.customer_id, col(Customer.deleted_at).is_(None)
            )
        ),
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


def _refuse_conflicts(request: OrderRequest, found: _Lookup, owner: str | None) -> None:
    """Refused for an unknown reference, or an account id or IMEI already taken (to a named key, without
    naming the order that has the IMEI: it may be another website's)."""
    if found.customer is None:
        raise unknown_reference("customer_id", "customer", request.customer_id)
    if found.product is None:
        raise unknown_reference("product_id", "product", request.product_id)
    if found.account is not None:
        raise Conflict(f"account {request.account_id!r} already exists")
    if found.imei_account is not None:
        raise Conflict(f"IMEI {request.imei} already belongs to an account")
    if found.imei_order is not None:
        by = "another order" if owner is not None else f"order {found.imei_order!r}"
        raise Conflict(f"IMEI {request.imei} is being provisioned by {by}")


def _fingerprint(secret_key: SecretStr, request: OrderRequest) -> str:
    """A keyed hash of the whole request: tells a repeat from a conflict without keeping the password."""
    canonical = {
        "order_id": request.order_id,
        "customer_id": request.customer_id,
        "product_id": request.product_id,
        "account": {"imei": request.imei, "account_id": request.account_id, "password": request.password},
    }
    message = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret_key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()
