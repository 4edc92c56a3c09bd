"""MVNO orders from the provider's website (use case 1)."""

import hashlib
import hmac
import json
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from fastapi import APIRouter, BackgroundTasks, Depends, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ScalarSelect
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.auth import Role
from api.deps import ReadSessionDep, SessionsDep, SettingsDep, TemporalDep, require
from api.fields import Imei, ResourceId, SipPassword
from api.order_starts import start_order_workflow
from api.persistence import get_or_404, unknown_reference
from api.problems import Problem
from billing.credentials import new_account_id
from billing.db import snapshot
from billing.models import Account, AccountStatus, Customer, Order, OrderStatus, Product, ProvisioningState
from billing.uniqueness import imei_taken
from contracts.orders import order_origin, order_workflow_id
from core.settings import Settings

router = APIRouter(prefix="/v1/orders", tags=["orders"], dependencies=[Depends(require(Role.website))])


class OrderedAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    imei: Imei
    account_id: ResourceId | None = None
    password: SipPassword | None = None


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: ResourceId
    customer_id: ResourceId
    product_id: ResourceId
    account: OrderedAccount


class OrderPublic(BaseModel):
    order_id: str
    status: OrderStatus
    account_id: str
    customer_id: str
    product_id: str
    imei: str
    workflow_id: str
    provisioning_state: ProvisioningState | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime


@router.post("", status_code=202, responses={200: {"description": "The same order again: it is unchanged"}})
async def submit_order(
    body: OrderCreate,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    response: Response,
    after_response: BackgroundTasks,
) -> OrderPublic:
    """Accept an order and start its provisioning; the same order again answers what it already is.

    202 means the order is stored: its workflow starts right after the response (`workflow_id` names
    it), or, if Temporal cannot be reached then, as soon as it can (api/order_starts.py)."""
    fingerprint = _fingerprint(settings, body)
    # A short session: SQLite holds its write lock while one is open.
    async with sessions() as session:
        order, created = await _accept(session, body, fingerprint)
    if not created:
        if not hmac.compare_digest(order.fingerprint, fingerprint):
            raise Problem(409, f"order {body.order_id!r} already exists with different content")
        response.status_code = 200
    if created or order.status == OrderStatus.accepted:  # a repeat also starts what a crash left unstarted
        after_response.add_task(start_order_workflow, temporal, settings, order)
    if created:  # as just written: its account does not exist yet
        return OrderPublic.model_validate(order, from_attributes=True)
    async with snapshot(sessions) as session:
        return await _view(session, await session.get_one(Order, order.order_id))


async def _accept(session: AsyncSession, body: OrderCreate, fingerprint: str) -> tuple[Order, bool]:
    """The stored order for `body.order_id`, and whether this request created it."""
    # One query for every check, so the write lock (SQLite's) is held for two statements and a commit.
    found = await _lookup(session, body)
    if found.order is not None:
        return await session.get_one(Order, body.order_id), False
    _refuse_conflicts(body, found)
    order = Order(
        order_id=body.order_id,
        customer_id=body.customer_id,
        product_id=body.product_id,
        account_id=body.account.account_id or new_account_id(),
        imei=body.account.imei,
        requested_password=body.account.password.get_secret_value() if body.account.password else None,
        fingerprint=fingerprint,
        workflow_id=order_workflow_id(body.order_id),
    )
    session.add(order)
    try:
        await session.commit()
    except IntegrityError as err:
        await session.rollback()
        existing = await session.get(Order, body.order_id)
        if existing is not None:  # the same order_id, submitted concurrently
            return existing, False
        if imei_taken(err):  # another order for the IMEI, admitted since the lookup: the database decides
            raise Problem(409, f"IMEI {body.account.imei} is already in use") from None
        raise
    return order, True


class _Lookup(NamedTuple):
    """What the database holds that an order's admission depends on (None: nothing)."""

    order: str | None  # this order, submitted before
    customer: str | None
    product: str | None
    account: str | None  # an account with the requested account id
    imei_account: str | None  # a live account with the IMEI
    imei_order: str | None  # another order provisioning the IMEI


async def _lookup(session: AsyncSession, body: OrderCreate) -> _Lookup:
    def first(query: SelectOfScalar[str]) -> ScalarSelect[str]:
        return query.limit(1).scalar_subquery()

    imei = body.account.imei
    query = sa.select(  # sqlmodel's `select` takes at most four columns
        first(select(Order.order_id).where(Order.order_id == body.order_id)),
        first(select(Customer.customer_id).where(Customer.customer_id == body.customer_id)),
        first(select(Product.product_id).where(Product.product_id == body.product_id)),
        first(select(Account.account_id).where(Account.account_id == body.account.account_id)),
        first(select(Account.account_id).where(Account.imei == imei, col(Account.status) != AccountStatus.terminated)),
        first(
            select(Order.order_id).where(
                Order.imei == imei, col(Order.status).in_([OrderStatus.accepted, OrderStatus.provisioning])
            )
        ),
    )
    row = (await (await session.connection()).execute(query)).one()
    return _Lookup(*row)


def _refuse_conflicts(body: OrderCreate, found: _Lookup) -> None:
    """A 422 for an unknown reference, a 409 for an account id or IMEI already taken."""
    if found.customer is None:
        raise unknown_reference("customer_id", "customer", body.customer_id)
    if found.product is None:
        raise unknown_reference("product_id", "product", body.product_id)
    if found.account is not None:
        raise Problem(409, f"account {body.account.account_id!r} already exists")
    if found.imei_account is not None:
        raise Problem(409, f"IMEI {body.account.imei} already belongs to an account")
    if found.imei_order is not None:
        raise Problem(409, f"IMEI {body.account.imei} is being provisioned by order {found.imei_order!r}")


@router.get("/{order_id}")
async def get_order(order_id: str, session: ReadSessionDep) -> OrderPublic:
    return await _view(session, await get_or_404(session, Order, order_id, "order"))


def _fingerprint(settings: Settings, body: OrderCreate) -> str:
    """A keyed hash of the whole request: tells a repeat from a conflict without keeping the password."""
    canonical = body.model_dump(mode="json") | {
        "account": body.account.model_dump(mode="json")
        | {"password": body.account.password.get_secret_value() if body.account.password else None}
    }
    message = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(settings.secret_key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


async def _view(session: AsyncSession, order: Order) -> OrderPublic:
    """The order with its own outcome: the account's provisioning state only while the account is the
    one this order created (a failed order's account id is free for a corrected order to reuse)."""
    account = await session.get(Account, order.account_id)
    if account is not None and account.created_by != order_origin(order.order_id):
        account = None
    error = order.error
    if order.status == OrderStatus.failed:
        state: ProvisioningState | None = ProvisioningState.failed
    else:
        state = account.provisioning_state if account else None
        if error is None and account is not None and state == ProvisioningState.retry:
            error = account.last_error
    view = OrderPublic.model_validate(order, from_attributes=True)
    return view.model_copy(update={"provisioning_state": state, "error": error})
