"""Accounts: read and changed by operations staff (services.accounts); no answer ever carries the SIP
password. A change answers 202 once it is committed: the CMMS gets it within seconds."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.fields import Imei, SipPassword
from api.pagination import Page, PageDep
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


@router.get("")
async def list_accounts(
    outbox: OutboxDep,
    page: PageDep,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    product_id: Annotated[str | None, Query(max_length=64)] = None,
    status: AccountStatus | None = None,
    imei: Annotated[str | None, Query(pattern=r"^[0-9]{15}$", description="Which account has this phone")] = None,
    phone_number: Annotated[
        str | None, Query(max_length=32, description="Which account has this number (international format)")
    ] = None,
) -> Page[AccountPublic]:
    """Accounts oldest first. By IMEI: every account that had the phone (a terminated one keeps its IMEI);
    by number: the account a signup of the number made."""
    where = accounts.AccountFilter(customer_id, product_id, status, imei, phone_number)
    found = await accounts.list_accounts(outbox, where, page)
    return Page(items=[AccountPublic.model_validate(row, from_attributes=True) for row in found.items], next=found.next)


@router.get("/{account_id}")
async def get_account(account_id: str, outbox: OutboxDep) -> AccountPublic:
    row = await accounts.get_account(outbox, account_id)
    return AccountPublic.model_validate(row, from_attributes=True)


@router.patch("/{account_id}", status_code=202)
async def update_account(
    account_id: str, body: AccountUpdate, outbox: OutboxDep, caller: CallerDep
) -> AccountChangeAccepted:
    """Change the password, the IMEI or the block state; the CMMS gets the change within seconds."""
    change = accounts.AccountChange(
        password=body.password.get_secret_value() if body.password else None, imei=body.imei, blocked=body.blocked
    )
    accepted = await accounts.change_account(outbox, account_id, change, caller.label)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)


@router.delete("/{account_id}", status_code=202)
async def terminate_account(account_id: str, outbox: OutboxDep, caller: CallerDep) -> AccountChangeAccepted:
    """Terminate the account and remove it from the CMMS; a repeat answers the same."""
    accepted = await accounts.terminate_account(outbox, account_id, caller.label)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)
