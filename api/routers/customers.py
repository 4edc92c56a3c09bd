"""Customers: who buys accounts, with the custom fields their class enables.

Changing a customer's custom fields re-provisions all of its accounts (use case 3): the API stores
the change, raises the customer's revision and hands the rest to the customer's rollout workflow.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth import Role
from api.deps import ReadSessionDep, SessionDep, SettingsDep, TemporalDep, require
from api.fields import Name, ResourceId
from api.persistence import get_or_404, insert, unknown_reference
from api.problems import Problem
from billing.custom_fields import value_errors
from billing.models import Customer, CustomerClass, Reseller, utcnow
from billing.provisioning import PROFILE_FIELD
from contracts.rollouts import RolloutProgress
from core.customer_rollout import customer_changed, rollout_progress
from core.settings import Settings

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
async def create_customer(body: CustomerCreate, session: SessionDep, settings: SettingsDep) -> CustomerPublic:
    customer_class = await session.get(CustomerClass, body.customer_class_id)
    if customer_class is None:
        raise unknown_reference("customer_class_id", "customer class", body.customer_class_id)
    if body.reseller_id is not None and await session.get(Reseller, body.reseller_id) is None:
        raise unknown_reference("reseller_id", "reseller", body.reseller_id)
    await _check_custom_fields(session, settings, customer_class, body.custom_fields)
    row = await insert(session, Customer(**body.model_dump()), "customer", body.customer_id)
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.get("/{customer_id}")
async def get_customer(customer_id: str, session: ReadSessionDep) -> CustomerPublic:
    row = await get_or_404(session, Customer, customer_id, "customer")
    return CustomerPublic.model_validate(row, from_attributes=True)


@router.patch("/{customer_id}", status_code=202)
async def update_customer(
    customer_id: str, body: CustomerUpdate, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> RolloutAccepted:
    """Change custom fields, then re-provision every account of the customer (also when nothing changed:
    a way to re-run a rollout)."""
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise Problem(404, f"customer {customer_id!r} does not exist")
    customer_class = await session.get_one(CustomerClass, customer.customer_class_id)
    values = {name: value for name, value in body.custom_fields.items() if value is not None}
    await _check_custom_fields(session, settings, customer_class, values)
    merged = {name: value for name, value in customer.custom_fields.items() if name not in body.custom_fields}
    customer.custom_fields = merged | values  # a new dict: the JSON column sees the change
    customer.revision += 1
    customer.updated_at = utcnow()
    session.add(customer)
    await session.commit()
    # Stored first: if Temporal is unavailable (503), repeating the request rolls the change out.
    workflow_id = await customer_changed(temporal, settings, customer_id, customer.revision)
    return RolloutAccepted(
        workflow_id=workflow_id,
        customer_id=customer_id,
        revision=customer.revision,
        progress_url=f"/v1/customers/{customer_id}/rollout",
    )


@router.get("/{customer_id}/rollout")
async def get_rollout(customer_id: str, session: ReadSessionDep, temporal: TemporalDep) -> RolloutProgress:
    """The customer's latest rollout: the revision it pushes, accounts total, done and failed."""
    await get_or_404(session, Customer, customer_id, "customer")
    progress = await rollout_progress(temporal, customer_id)
    if progress is None:
        raise Problem(404, f"customer {customer_id!r} has had no rollout")
    return progress


async def _check_custom_fields(
    session: AsyncSession, settings: Settings, customer_class: CustomerClass, values: dict[str, str]
) -> None:
    """422 unless every value is enabled on the class, allowed by its definition, and a profile the CMMS knows."""
    errors = await value_errors(session, customer_class, values)
    profile = values.get(PROFILE_FIELD)
    known = settings.known_profiles
    field = f"custom_fields.{PROFILE_FIELD}"
    if profile is not None and known and profile not in known and not any(e["field"] == field for e in errors):
        message = f"the CMMS knows no profile {profile!r}; known: {', '.join(sorted(known))}"
        errors.append({"field": field, "message": message, "type": "unknown_profile"})
    if errors:
        raise Problem(422, "custom_fields cannot be set on this customer", title="Validation failed", errors=errors)
