"""Customer classes: which custom fields their customers may carry."""

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.fields import AnyId, CustomFieldName, Name, ResourceId
from billing.models import CustomerClass
from services import customers

router = APIRouter(
    prefix="/v1/customer-classes", tags=["customer classes"], dependencies=[Depends(require(Role.admin))]
)


class CustomerClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_class_id: ResourceId
    name: Name
    custom_fields: list[CustomFieldName] = Field(default_factory=list, max_length=50)


class CustomerClassPublic(BaseModel):
    customer_class_id: str
    name: str
    custom_fields: list[str]
    created_at: datetime


@router.post("", status_code=201)
async def create_customer_class(body: CustomerClassCreate, outbox: OutboxDep, caller: CallerDep) -> CustomerClassPublic:
    row = CustomerClass(customer_class_id=body.customer_class_id, name=body.name, custom_fields=body.custom_fields)
    return CustomerClassPublic.model_validate(
        await customers.create_customer_class(outbox, row, caller.label), from_attributes=True
    )


@router.get("/{customer_class_id}")
async def get_customer_class(customer_class_id: AnyId, outbox: OutboxDep) -> CustomerClassPublic:
    row = await customers.get_customer_class(outbox, customer_class_id)
    return CustomerClassPublic.model_validate(row, from_attributes=True)
