"""Accounts: read and changed by operations staff (services.accounts); no answer ever carries the SIP
password. A change answers 202 once it is committed: the CMMS gets it within seconds."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from api.auth import Role
from api.deps import OutboxDep, require
from api.fields import Imei, SipPassword
from billing.models import AccountStatus, ProvisioningState
from services import accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[Depends(require(Role.admin))])


class AccountUpdate(BaseModel):
    """What may change on an account; each field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    password: SipPassword | None = None
    imei: Imei | None = None
    blocked: bool | None = None


class AccountChangeAccepted(BaseModel):
    workflow_id: str
    account_id: str
    status: AccountStatus
    revision: int


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
async def get_account(account_id: str, outbox: OutboxDep) -> AccountPublic:
    row = await accounts.get_account(outbox, account_id)
    return AccountPublic.model_validate(row, from_attributes=True)


@router.patch("/{account_id}", status_code=202)
async def update_account(account_id: str, body: AccountUpdate, outbox: OutboxDep) -> AccountChangeAccepted:
    """Change the password, the IMEI or the block state; the CMMS gets the change within seconds."""
    change = accounts.AccountChange(
        password=body.password.get_secret_value() if body.password else None, imei=body.imei, blocked=body.blocked
    )
    accepted = await accounts.change_account(outbox, account_id, change)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)


@router.delete("/{account_id}", status_code=202)
async def terminate_account(account_id: str, outbox: OutboxDep) -> AccountChangeAccepted:
    """Terminate the account and remove it from the CMMS; a repeat answers the same."""
    accepted = await accounts.terminate_account(outbox, account_id)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)
