"""Products: what an account is sold as, with its service policies (use case 4)."""

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from api.auth import Role
from api.deps import SessionDep, require
from api.fields import Name, ResourceId
from api.persistence import get_or_404, insert
from billing.models import Product

router = APIRouter(prefix="/v1/products", tags=["products"], dependencies=[Depends(require(Role.admin))])


class MessagingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_events: bool


class ServicePolicies(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messaging: MessagingPolicy | None = None


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ResourceId
    name: Name
    service_policies: ServicePolicies = ServicePolicies()


class ProductPublic(BaseModel):
    product_id: str
    name: str
    service_policies: ServicePolicies
    created_at: datetime


@router.post("", status_code=201)
async def create_product(body: ProductCreate, session: SessionDep) -> ProductPublic:
    product = Product(
        product_id=body.product_id,
        name=body.name,
        service_policies=body.service_policies.model_dump(exclude_none=True),
    )
    row = await insert(session, product, "product", body.product_id)
    return ProductPublic.model_validate(row, from_attributes=True)


@router.get("/{product_id}")
async def get_product(product_id: str, session: SessionDep) -> ProductPublic:
    row = await get_or_404(session, Product, product_id, "product")
    return ProductPublic.model_validate(row, from_attributes=True)
