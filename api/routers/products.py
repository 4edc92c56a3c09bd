"""Products: what an account is sold as, with its service policies (messaging by wallet)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.fields import WHOLE, AnyId, Name, ResourceId
from api.pagination import Page, PageDep
from billing.models import Product
from billing.wallets import MAX_BALANCE
from services import products

router = APIRouter(prefix="/v1/products", tags=["products"], dependencies=[Depends(require(Role.admin))])


class InitialWalletPolicy(BaseModel):
    """The messaging wallet each new account of the product is opened with (by its order or signup), as
    the policy sets it; billing reads it back as `billing.messaging.InitialWallet`."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[StrictInt, Field(ge=0, le=MAX_BALANCE), WHOLE]
    # How long the units last; also the validity of a top-up that names none. Absent: they never expire.
    valid_days: Annotated[StrictInt, Field(ge=1, le=36500), WHOLE] | None = None


class ProductMessagingPolicy(BaseModel):
    """The product's messaging policy: it decides the push for every account of the product."""

    model_config = ConfigDict(extra="forbid")

    push_events: StrictBool
    # Without one, a new account has no wallet: suspended from the start where push_events is on.
    initial_wallet: InitialWalletPolicy | None = None


class ServicePolicies(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messaging: ProductMessagingPolicy | None = None


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ResourceId
    name: Name
    service_policies: ServicePolicies = ServicePolicies()


class ProductUpdate(BaseModel):
    """Only the fields given change; a service named with `null` loses its policy."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    service_policies: ServicePolicies | None = None


class ProductPublic(BaseModel):
    product_id: str
    name: str
    service_policies: dict[str, Any]  # as stored: the settings given, none of those left out
    created_at: datetime


@router.post("", status_code=201)
async def create_product(body: ProductCreate, outbox: OutboxDep, caller: CallerDep) -> ProductPublic:
    product = Product(
        product_id=body.product_id,
        name=body.name,
        service_policies=body.service_policies.model_dump(exclude_none=True),
    )
    return ProductPublic.model_validate(
        await products.create_product(outbox, product, caller.label), from_attributes=True
    )


@router.get("")
async def list_products(outbox: OutboxDep, page: PageDep) -> Page[ProductPublic]:
    """Products oldest first."""
    found = await products.list_products(outbox, page)
    return Page(items=[ProductPublic.model_validate(row, from_attributes=True) for row in found.items], next=found.next)


@router.get("/{product_id}")
async def get_product(product_id: AnyId, outbox: OutboxDep) -> ProductPublic:
    return ProductPublic.model_validate(await products.get_product(outbox, product_id), from_attributes=True)


class ProductUpdated(ProductPublic):
    # The rollout telling the product's accounts to push their messaging state, when one was started.
    workflow_id: str | None = None


@router.patch("/{product_id}")
async def update_product(
    product_id: AnyId, body: ProductUpdate, outbox: OutboxDep, caller: CallerDep
) -> ProductUpdated:
    """Rename a product or change its service policies; turning messaging's `push_events` on brings every
    account of the product into line in the CMMS (suspended unless its wallet is usable); turning it off
    hands messaging back to the CMMS (each account pushed once with messaging enabled, then left alone)."""
    policies = body.service_policies.model_dump(exclude_unset=True) if body.service_policies else None
    changed = await products.change_product(outbox, product_id, body.name, policies, caller.label)
    view = ProductPublic.model_validate(changed.product, from_attributes=True)
    return ProductUpdated(**view.model_dump(), workflow_id=changed.workflow_id)
