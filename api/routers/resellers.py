"""Resellers: the provider's partners, each with the domain its customers fall back to."""

from datetime import datetime

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, model_validator

from api.auth import Role
from api.deps import CallerDep, OutboxDep, SettingsDep, require
from api.fields import AnyId, DomainName, Name, ResourceId
from api.pagination import Page, PageDep
from billing.models import Reseller
from services import customers

router = APIRouter(prefix="/v1/resellers", tags=["resellers"], dependencies=[Depends(require(Role.admin))])


class ResellerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reseller_id: ResourceId
    name: Name
    domain: DomainName


class ResellerUpdate(BaseModel):
    """What changes; each field left out stays as it is."""

    # One of them at least (below): the schema says so too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                {"required": ["domain"], "properties": {"domain": {"type": "string"}}},
            ]
        },
    )

    name: Name | None = None
    domain: DomainName | None = None

    @model_validator(mode="after")
    def _something(self) -> "ResellerUpdate":
        if self.name is None and self.domain is None:
            raise ValueError("name or domain is required")
        return self


class ResellerPublic(BaseModel):
    reseller_id: str
    name: str
    domain: str
    created_at: datetime


class ResellerChangeAccepted(ResellerPublic):
    """The reseller as changed, and its customers whose accounts follow the new domain (each one's
    rollout: `GET /v1/customers/{id}/rollout`)."""

    customers: list[str]


@router.post("", status_code=201)
async def create_reseller(body: ResellerCreate, outbox: OutboxDep, caller: CallerDep) -> ResellerPublic:
    row = await customers.create_reseller(outbox, Reseller(**body.model_dump()), caller.label)
    return ResellerPublic.model_validate(row, from_attributes=True)


@router.get("")
async def list_resellers(outbox: OutboxDep, page: PageDep) -> Page[ResellerPublic]:
    """Resellers oldest first."""
    found = await customers.list_resellers(outbox, page)
    items = [ResellerPublic.model_validate(row, from_attributes=True) for row in found.items]
    return Page(items=items, next=found.next)


@router.get("/{reseller_id}")
async def get_reseller(reseller_id: AnyId, outbox: OutboxDep) -> ResellerPublic:
    row = await customers.get_reseller(outbox, reseller_id)
    return ResellerPublic.model_validate(row, from_attributes=True)


@router.patch(
    "/{reseller_id}",
    status_code=202,
    responses={200: {"description": "Changed; no customer's accounts depend on the change"}},
)
async def update_reseller(
    reseller_id: AnyId,
    body: ResellerUpdate,
    outbox: OutboxDep,
    settings: SettingsDep,
    caller: CallerDep,
    response: Response,
) -> ResellerChangeAccepted:
    """Rename a reseller or change its domain. A new domain reaches every account of the reseller's
    customers that have no domain of their own (`202`: their rollouts are under way)."""
    changed = await customers.change_reseller(
        outbox, settings.provisioning, reseller_id, body.name, body.domain, caller.label
    )
    if not changed.customers:
        response.status_code = 200
    view = ResellerPublic.model_validate(changed.reseller, from_attributes=True)
    return ResellerChangeAccepted(**view.model_dump(), customers=changed.customers)
