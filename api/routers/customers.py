"""Customers: who buys accounts, with the custom fields their class enables."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import Role
from api.deps import SessionDep, require
from api.fields import Name, ResourceId
from api.persistence import get_or_404, insert, unknown_reference
from api.problems import Problem
from billing.custom_fields import value_errors
from billing.models import Customer, CustomerClass, Reseller

router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[Depends(require(Role.admin))])

CustomFieldValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: ResourceId
    name: Name
    customer_class_id: ResourceId
    reseller_id: ResourceId | None = None
    custom_fields: dict[str, CustomFieldValue] = Field(default_factory=dict, max_length=50)


class CustomerPublic(BaseModel):
    customer_id: str
    name: str
    customer_class_id: str
    reseller_id: str | None
    custom_fields: dict[str, str]
    revision: int
    created_at: datetime
    updated_at: datetime


@router.post("", status_code=201)
async def create_customer(body: CustomerCreate, session: SessionDep) -> CustomerPublic:
    customer_class = await session.get(CustomerClass, body.customer_class_id)
    if customer_class is None:
        raise unknown_reference("customer_class_id", "customer class", body.customer_class_id)
    if body.reseller_id is not None and await session.get(Reseller, body.reseller_id) is None:
        raise unknown_reference("reseller_id", "reseller", body.reseller_id)
    errors = await value_errors(session, customer_class, body.custom_fields)
    if errors:
        raise Problem(422, "custom_fields cannot be set on this customer", title="Validation failed", errors=errors)
    row = await insert(session, Customer(**body.model_dump()), "customer", body.customer_id)
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.get("/{customer_id}")
async def get_customer(customer_id: str, session: SessionDep) -> CustomerPublic:
    row = await get_or_404(session, Customer, customer_id, "customer")
    return CustomerPublic.model_validate(row, from_attributes=True)
