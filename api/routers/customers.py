"""Customers: who buys accounts, with the custom fields their class enables.

Changing a customer's custom fields re-provisions all of its accounts (use case 3): the change is
committed with the outbox record that starts (or redirects) the customer's rollout (services.customers).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import Role
from api.deps import OutboxDep, SettingsDep, TemporalDep, require
from api.fields import Name, ResourceId
from billing.models import Customer
from contracts.rollouts import RolloutProgress
from services import customers

router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[Depends(require(Role.admin))])

CustomFieldValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: ResourceId
    name: Name
    customer_class_id: ResourceId
    reseller_id: ResourceId | None = None
    custom_fields: dict[str, CustomFieldValue] = Field(default_factory=dict, max_length=50)


class CustomerUpdate(BaseModel):
    """A JSON merge patch of the custom fields: a value sets a field, null removes it."""

    model_config = ConfigDict(extra="forbid")

    custom_fields: dict[str, CustomFieldValue | None] = Field(max_length=50)


class RolloutAccepted(BaseModel):
    workflow_id: str
    customer_id: str
    revision: int
    progress_url: str


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
async def create_customer(body: CustomerCreate, outbox: OutboxDep, settings: SettingsDep) -> CustomerPublic:
    row = await customers.create_customer(outbox, settings, Customer(**body.model_dump()))
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.get("/{customer_id}")
async def get_customer(customer_id: str, outbox: OutboxDep) -> CustomerPublic:
    row = await customers.get_customer(outbox, customer_id)
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.patch("/{customer_id}", status_code=202)
async def update_customer(
    customer_id: str, body: CustomerUpdate, outbox: OutboxDep, settings: SettingsDep
) -> RolloutAccepted:
    """Change custom fields, then re-provision every account of the customer (also when nothing changed:
    a way to re-run a rollout)."""
    changed = await customers.change_custom_fields(outbox, settings, customer_id, body.custom_fields)
    return RolloutAccepted(
        workflow_id=changed.workflow_id,
        customer_id=customer_id,
        revision=changed.revision,
        progress_url=f"/v1/customers/{customer_id}/rollout",
    )


@router.get("/{customer_id}/rollout")
async def get_rollout(customer_id: str, outbox: OutboxDep, temporal: TemporalDep) -> RolloutProgress:
    """The customer's latest rollout: the revision it pushes, accounts total, done and failed."""
    return await customers.rollout_progress(outbox, temporal, customer_id)
