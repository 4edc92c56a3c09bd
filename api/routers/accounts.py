"""Accounts: read and changed by operations staff (services.accounts); no answer ever carries the SIP
password. A change answers 202 once it is committed: the CMMS gets it within seconds."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StrictBool

from api.auth import Role
from api.deps import CallerDep, OutboxDep, TemporalDep, require
from api.fields import AnyId, Imei, MobileNumber, SipPassword
from api.pagination import Page, PageDep
from api.routers.audit import AuditEntryPublic
from api.routers.orders import OrderPublic, public_order
from billing.models import AccountStatus, PushStatus
from contracts.signups import SignupState
from services import account_history, accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[Depends(require(Role.admin))])


class AccountUpdate(BaseModel):
    """What may change on an account; each field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    password: SipPassword | None = None
    imei: Imei | None = None
    blocked: StrictBool | None = None


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
    provisioning_state: PushStatus
    last_error: str | None
    cmms_version: int | None
    service_policies: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@router.get("")
async def list_accounts(
    outbox: OutboxDep,
    page: PageDep,
    customer_id: Annotated[AnyId | None, Query(max_length=64)] = None,
    product_id: Annotated[AnyId | None, Query(max_length=64)] = None,
    status: AccountStatus | None = None,
    imei: Annotated[str | None, Query(pattern=r"^[0-9]{15}$", description="Which account has this phone")] = None,
    phone_number: Annotated[
        MobileNumber | None, Query(description="Which account has this number (international format)")
    ] = None,
) -> Page[AccountPublic]:
    """Accounts oldest first. By IMEI: every account that had the phone (a terminated one keeps its IMEI);
    by number: the account a signup of the number made."""
    where = accounts.AccountFilter(customer_id, product_id, status, imei, phone_number)
    found = await accounts.list_accounts(outbox, where, page)
    return Page(items=[AccountPublic.model_validate(row, from_attributes=True) for row in found.items], next=found.next)


@router.get("/{account_id}")
async def get_account(account_id: AnyId, outbox: OutboxDep) -> AccountPublic:
    row = await accounts.get_account(outbox, account_id)
    return AccountPublic.model_validate(row, from_attributes=True)


class SignupSummary(BaseModel):
    signup_id: str
    phone_number: str
    status: SignupState
    created_at: datetime
    updated_at: datetime


class WorkflowRunPublic(BaseModel):
    """A workflow that names the account (its order, its signup, each run of its own workflow)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    provisioning_state: str | None
    started_at: datetime
    closed_at: datetime | None


class PushPublic(BaseModel):
    """One push of the account to the CMMS and how it ended (`in_progress`: still trying)."""

    workflow_id: str
    run_id: str
    scheduled_at: datetime
    outcome: Literal["ok", "failed", "timed_out", "canceled", "in_progress"]
    finished_at: datetime | None
    attempt: int | None
    error: str | None


class AccountHistoryPublic(BaseModel):
    account: AccountPublic
    orders: list[OrderPublic]
    signups: list[SignupSummary]
    changes: list[AuditEntryPublic]  # the edits operators made, with who and when
    workflows: list[WorkflowRunPublic]
    pushes: list[PushPublic]  # oldest first, the newest 100
    last_error: str | None  # why the last push failed, if it did
    temporal: Literal["ok", "unavailable"]  # "unavailable": Temporal could not be read; billing's part is shown


@router.get("/{account_id}/history")
async def get_history(account_id: AnyId, outbox: OutboxDep, temporal: TemporalDep) -> AccountHistoryPublic:
    """What happened to the account: its orders, signups and edits from billing; its workflows and every
    push to the CMMS with its outcome and times from Temporal."""
    found = await account_history.account_history(outbox, temporal, account_id)
    return AccountHistoryPublic(
        account=AccountPublic.model_validate(found.account, from_attributes=True),
        orders=[public_order(view) for view in found.orders],
        signups=[SignupSummary.model_validate(row, from_attributes=True) for row in found.signups],
        changes=[AuditEntryPublic.model_validate(row, from_attributes=True) for row in found.changes],
        workflows=[WorkflowRunPublic.model_validate(run, from_attributes=True) for run in found.workflows],
        pushes=[PushPublic.model_validate(push, from_attributes=True) for push in found.pushes],
        last_error=found.last_error,
        temporal="unavailable" if found.temporal == "unavailable" else "ok",
    )


@router.patch("/{account_id}", status_code=202)
async def update_account(
    account_id: AnyId, body: AccountUpdate, outbox: OutboxDep, caller: CallerDep
) -> AccountChangeAccepted:
    """Change the password, the IMEI or the block state; the CMMS gets the change within seconds."""
    change = accounts.AccountChange(
        password=body.password.get_secret_value() if body.password else None, imei=body.imei, blocked=body.blocked
    )
    accepted = await accounts.change_account(outbox, account_id, change, caller.label)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)


@router.delete("/{account_id}", status_code=202)
async def terminate_account(account_id: AnyId, outbox: OutboxDep, caller: CallerDep) -> AccountChangeAccepted:
    """Terminate the account and remove it from the CMMS; a repeat answers the same."""
    accepted = await accounts.terminate_account(outbox, account_id, caller.label)
    return AccountChangeAccepted.model_validate(accepted, from_attributes=True)
