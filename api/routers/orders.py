"""MVNO orders from the provider's website."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict

from api.auth import Caller, Role
from api.deps import OutboxDep, SettingsDep, require
from api.fields import AnyId, DateTime, Imei, ResourceId, SipPassword
from api.pagination import Page, PageDep
from billing.models import MessagingState, OrderStatus, PushStatus
from services import orders

_website = require(Role.website)  # one check, so FastAPI runs it once per request for both uses below
router = APIRouter(prefix="/v1/orders", tags=["orders"], dependencies=[Depends(_website)])
WebsiteCaller = Annotated[Caller, Depends(_website)]  # the caller, whose key's name scopes its orders


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
    provisioning_state: PushStatus | None = None
    error: str | None = None
    # How the account's messaging starts: "active" (the product's initial wallet pays for it), "suspended"
    # (the product drives messaging but gives no initial wallet: it waits for a top-up), or null (the CMMS
    # keeps messaging as it is); once the CMMS has confirmed it, as confirmed.
    messaging: MessagingState | None = None
    created_at: datetime
    updated_at: datetime


@router.post("", status_code=202, responses={200: {"description": "The same order again: it is unchanged"}})
async def submit_order(
    body: OrderCreate, outbox: OutboxDep, settings: SettingsDep, caller: WebsiteCaller, response: Response
) -> OrderPublic:
    """Accept an order and start its provisioning; the same order again answers what it already is.

    202 means the order is stored, with what starts its workflow (`workflow_id` names it): right after
    the response, or as soon as Temporal can be reached. The order keeps the name of the key that sent
    it: a named key reads only its own orders, and another key's `order_id` is a conflict (409). The
    self-signup customer takes no orders (422): its accounts are made by the signups of their numbers."""
    request = orders.OrderRequest(
        order_id=body.order_id,
        customer_id=body.customer_id,
        product_id=body.product_id,
        imei=body.account.imei,
        account_id=body.account.account_id,
        password=body.account.password.get_secret_value() if body.account.password else None,
        key_name=caller.name,
    )
    view, created = await orders.submit_order(
        outbox,
        settings.secret_key,
        request,
        ott_customer_id=settings.signups.ott_customer_id,
        owner=caller.order_owner,
    )
    if not created:
        response.status_code = 200
    return public_order(view)


@router.get("")
async def list_orders(
    outbox: OutboxDep,
    caller: WebsiteCaller,
    page: PageDep,
    customer_id: Annotated[AnyId | None, Query(max_length=64)] = None,
    status: OrderStatus | None = None,
    created_since: Annotated[
        DateTime | None, Query(description="Orders created at or after this time (RFC 3339, with offset)")
    ] = None,
    account_id: Annotated[AnyId | None, Query(max_length=64, description="The order that made this account")] = None,
) -> Page[OrderPublic]:
    """Orders oldest first, by customer, status, creation time and account; a named key's own only."""
    where = orders.OrderFilter(customer_id, status, created_since, account_id)
    found = await orders.list_orders(outbox, where, page, owner=caller.order_owner)
    return Page(items=[public_order(view) for view in found.items], next=found.next)


@router.get("/{order_id}")
async def get_order(order_id: AnyId, outbox: OutboxDep, caller: WebsiteCaller) -> OrderPublic:
    """The order; to a named key, only one of its own (another key's: 404)."""
    return public_order(await orders.get_order(outbox, order_id, owner=caller.order_owner))


def public_order(view: orders.OrderView) -> OrderPublic:
    """An order as the API shows it, with where its provisioning stands."""
    public = OrderPublic.model_validate(view.order, from_attributes=True)
    return public.model_copy(
        update={"provisioning_state": view.provisioning_state, "error": view.error, "messaging": view.messaging}
    )
