"""Accounts: read by operations staff; never carries the SIP password."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.auth import Role
from api.deps import SessionDep, require
from api.persistence import get_or_404
from billing.models import Account, AccountStatus, ProvisioningState

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[Depends(require(Role.admin))])


class AccountPublic(BaseModel):
    account_id: str
    customer_id: str
    product_id: str
    imei: str | None
    status: AccountStatus
    provisioning_state: ProvisioningState
    last_error: str | None
    cmms_version: int | None
    service_policies: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@router.get("/{account_id}")
async def get_account(account_id: str, session: SessionDep) -> AccountPublic:
    row = await get_or_404(session, Account, account_id, "account")
    return AccountPublic.model_validate(row, from_attributes=True)
