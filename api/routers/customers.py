"""Customers: who buys accounts, with the custom fields their class enables.

A change that alters what the customer's accounts are provisioned with re-provisions all of them
(customized provisioning): the change is committed with the outbox record that starts (or redirects) the
customer's rollout (services.customers).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from api.auth import Role
from api.deps import CallerDep, OutboxDep, SettingsDep, TemporalDep, require
from api.fields import TEXT, AnyId, CustomFieldName, Name, ResourceId
from api.pagination import Page, PageDep
from billing.models import Customer
from contracts.rollouts import RolloutProgress
from services import customers

router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[Depends(require(Role.admin))])

CustomFieldValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253, pattern=TEXT)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: ResourceId
    name: Name
    customer_class_id: ResourceId
    reseller_id: ResourceId | None = None
    custom_fields: dict[CustomFieldName, CustomFieldValue] = Field(default_factory=dict, max_length=50)


class CustomerUpdate(BaseModel):
    """What changes; each field left out stays as it is. `custom_fields` is a JSON merge patch (a value
    sets a field, null removes it); `reseller_id: null` takes the customer from its reseller."""

    # Something must change, and a customer always has a class (below): the schema says so too.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: Name | None = None
    customer_class_id: ResourceId | SkipJsonSchema[None] = None
    reseller_id: ResourceId | None = None
    custom_fields: dict[CustomFieldName, CustomFieldValue | None] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _something(self) -> "CustomerUpdate":
        if not self.model_fields_set:
            raise ValueError("name, customer_class_id, reseller_id or custom_fields is required")
        if "customer_class_id" in self.model_fields_set and self.customer_class_id is None:
            raise ValueError("customer_class_id cannot be null")
        return self


class CustomerPublic(BaseModel):
    customer_id: str
    name: str
    customer_class_id: str
    reseller_id: str | None
    custom_fields: dict[str, str]
    revision: int
    created_at: datetime
    updated_at: datetime


class CustomerChangeAccepted(CustomerPublic):
    """The customer as changed, and the rollout re-provisioning its accounts (null when none is needed)."""

    workflow_id: str | None
    progress_url: str | None


@router.post("", status_code=201)
async def create_customer(
    body: CustomerCreate, outbox: OutboxDep, settings: SettingsDep, caller: CallerDep
) -> CustomerPublic:
    row = await customers.create_customer(outbox, settings.provisioning, Customer(**body.model_dump()), caller.label)
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.get("")
async def list_customers(
    outbox: OutboxDep,
    page: PageDep,
    customer_class_id: Annotated[AnyId | None, Query(max_length=64)] = None,
    reseller_id: Annotated[AnyId | None, Query(max_length=64)] = None,
) -> Page[CustomerPublic]:
    """Customers oldest first, by class and by reseller."""
    found = await customers.list_customers(outbox, customers.CustomerFilter(customer_class_id, reseller_id), page)
    items = [CustomerPublic.model_validate(row, from_attributes=True) for row in found.items]
    return Page(items=items, next=found.next)


@router.get("/{customer_id}")
async def get_customer(customer_id: AnyId, outbox: OutboxDep) -> CustomerPublic:
    row = await customers.get_customer(outbox, customer_id)
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.patch(
    "/{customer_id}",
    status_code=202,
    responses={200: {"description": "Changed; the accounts are provisioned with the same values as before"}},
)
async def update_customer(
    customer_id: AnyId,
    body: CustomerUpdate,
    outbox: OutboxDep,
    settings: SettingsDep,
    caller: CallerDep,
    response: Response,
) -> CustomerChangeAccepted:
    """Change the name, class, reseller or custom fields. Every account of the customer is re-provisioned
    (`202`) when the custom fields are patched (also when nothing changed: a way to re-run a rollout) or
    the effective profile or domain changes; the custom fields must be enabled on the (new) class."""
    patch = customers.CustomerPatch(
        name=body.name,
        customer_class_id=body.customer_class_id,
        reseller_id=body.reseller_id,
        reseller_set="reseller_id" in body.model_fields_set,
        custom_fields=body.custom_fields,
    )
    changed = await customers.change_customer(outbox, settings.provisioning, customer_id, patch, caller.label)
    view = CustomerPublic.model_validate(changed.customer, from_attributes=True)
    if changed.rollout is None:
        response.status_code = 200
        return CustomerChangeAccepted(**view.model_dump(), workflow_id=None, progress_url=None)
    return CustomerChangeAccepted(
        **view.model_dump(),
        workflow_id=changed.rollout.workflow_id,
        progress_url=f"/v1/customers/{customer_id}/rollout",
    )


@router.delete("/{customer_id}", status_code=204, responses={409: {"description": "It has live accounts"}})
async def delete_customer(customer_id: AnyId, outbox: OutboxDep, settings: SettingsDep, caller: CallerDep) -> None:
    """Delete a customer with no live account (terminate them first) and no order in progress."""
    await customers.delete_customer(outbox, settings.signups.ott_customer_id, customer_id, caller.label)


@router.get("/{customer_id}/rollout")
async def get_rollout(customer_id: AnyId, outbox: OutboxDep, temporal: TemporalDep) -> RolloutProgress:
    """The customer's latest rollout: the revision it pushes, accounts total, done and failed."""
    return await customers.rollout_progress(outbox, temporal, customer_id)
