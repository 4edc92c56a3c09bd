"""Customer classes: which custom fields their customers may carry."""

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Role
from api.deps import ReadSessionDep, SessionDep, require
from api.fields import Name, ResourceId
from api.persistence import get_or_404, insert
from api.problems import Problem
from billing.custom_fields import definitions
from billing.models import CustomerClass

router = APIRouter(
    prefix="/v1/customer-classes", tags=["customer classes"], dependencies=[Depends(require(Role.admin))]
)


class CustomerClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_class_id: ResourceId
    name: Name
    custom_fields: list[str] = Field(default_factory=list, max_length=50)


class CustomerClassPublic(BaseModel):
    customer_class_id: str
    name: str
    custom_fields: list[str]
    created_at: datetime


@router.post("", status_code=201)
async def create_customer_class(body: CustomerClassCreate, session: SessionDep) -> CustomerClassPublic:
    enabled = list(dict.fromkeys(body.custom_fields))
    known = await definitions(session, enabled)
    unknown = [name for name in enabled if name not in known]
    if unknown:
        errors = [
            {
                "field": "custom_fields",
                "message": f"no custom field named {name!r}",
                "type": "unknown_custom_field",
            }
            for name in unknown
        ]
        raise Problem(422, "custom_fields names undefined fields", title="Validation failed", errors=errors)
    row = CustomerClass(customer_class_id=body.customer_class_id, name=body.name, custom_fields=enabled)
    row = await insert(session, row, "customer class", body.customer_class_id)
    return CustomerClassPublic.model_validate(row, from_attributes=True)


@router.get("/{customer_class_id}")
async def get_customer_class(customer_class_id: str, session: ReadSessionDep) -> CustomerClassPublic:
    row = await get_or_404(session, CustomerClass, customer_class_id, "customer class")
    return CustomerClassPublic.model_validate(row, from_attributes=True)
