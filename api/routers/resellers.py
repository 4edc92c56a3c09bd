"""Resellers: the provider's partners, each with the domain its customers fall back to."""

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from api.auth import Role
from api.deps import OutboxDep, require
from api.fields import DomainName, Name, ResourceId
from billing.models import Reseller
from services import customers

router = APIRouter(prefix="/v1/resellers", tags=["resellers"], dependencies=[Depends(require(Role.admin))])


class ResellerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reseller_id: ResourceId
    name: Name
    domain: DomainName


class ResellerPublic(BaseModel):
    reseller_id: str
    name: str
    domain: str
    created_at: datetime


@router.post("", status_code=201)
async def create_reseller(body: ResellerCreate, outbox: OutboxDep) -> ResellerPublic:
    row = await customers.create_reseller(outbox, Reseller(**body.model_dump()))
    return ResellerPublic.model_validate(row, from_attributes=True)


@router.get("/{reseller_id}")
async def get_reseller(reseller_id: str, outbox: OutboxDep) -> ResellerPublic:
    row = await customers.get_reseller(outbox, reseller_id)
    return ResellerPublic.model_validate(row, from_attributes=True)
