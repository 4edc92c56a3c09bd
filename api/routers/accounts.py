"""Accounts: read and changed by operations staff; no answer ever carries the SIP password.

A change is stored with a raised revision, then the account's workflow is told: it pushes billing's
current state to the CMMS one push at a time, so changes arrive in the order they were made.
"""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.auth import Role
from api.deps import ReadSessionDep, SessionDep, SettingsDep, TemporalDep, require
from api.fields import Imei, SipPassword
from api.persistence import get_or_404
from api.problems import Problem
from billing.db import FOR_CHANGE
from billing.models import Account, AccountStatus, ProvisioningState, utcnow
from core.account_sync import account_changed
from core.settings import Settings

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
async def get_account(account_id: str, session: ReadSessionDep) -> AccountPublic:
    row = await get_or_404(session, Account, account_id, "account")
    return AccountPublic.model_validate(row, from_attributes=True)


@router.patch("/{account_id}", status_code=202)
async def update_account(
    account_id: str, body: AccountUpdate, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> AccountChangeAccepted:
    """Change the password, the IMEI or the block state; the CMMS gets the change within seconds."""
    account = await _locked(session, account_id)
    if account.status == AccountStatus.pending:
        raise Problem(409, f"account {account_id!r} is still being provisioned by its order; try again shortly")
    if account.status == AccountStatus.terminated:
        raise Problem(409, f"account {account_id!r} is terminated")
    if body.imei is not None and body.imei != account.imei:
        holder = await session.exec(
            select(Account.account_id).where(
                Account.imei == body.imei,
                col(Account.status) != AccountStatus.terminated,
                col(Account.account_id) != account_id,
            )
        )
        if holder.first() is not None:
            raise Problem(409, f"IMEI {body.imei} already belongs to another account")
        account.imei = body.imei
    if body.password is not None:
        account.sip_password = body.password.get_secret_value()
    if body.blocked is not None:
        account.status = AccountStatus.blocked if body.blocked else AccountStatus.active
    return await _changed(session, temporal, settings, account)


@router.delete("/{account_id}", status_code=202)
async def terminate_account(
    account_id: str, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> AccountChangeAccepted:
    """Terminate the account and remove it from the CMMS; a repeat answers the same."""
    account = await _locked(session, account_id)
    if account.status == AccountStatus.pending:
        raise Problem(409, f"account {account_id!r} is still being provisioned by its order; try again shortly")
    if account.status == AccountStatus.terminated:
        # Told again all the same: should the first removal have been lost, this one completes it.
        workflow_id = await account_changed(temporal, settings, account_id)
        return AccountChangeAccepted(
            workflow_id=workflow_id, account_id=account_id, status=account.status, revision=account.revision
        )
    account.status = AccountStatus.terminated  # its IMEI stays on record but is free for another account
    return await _changed(session, temporal, settings, account)


async def _locked(session: AsyncSession, account_id: str) -> Account:
    """The account, locked until the change commits (two changes at once are applied one after the other)."""
    account = await session.get(Account, account_id, with_for_update=FOR_CHANGE)
    if account is None:
        raise Problem(404, f"account {account_id!r} does not exist")
    return account


async def _changed(
    session: AsyncSession, temporal: Client, settings: Settings, account: Account
) -> AccountChangeAccepted:
    """Store the change with a raised revision, then tell the account's workflow (which reads it back)."""
    account.revision += 1
    account.updated_at = utcnow()
    session.add(account)
    await session.commit()
    # Stored first: if Temporal is unavailable (503), repeating the request delivers the change.
    workflow_id = await account_changed(temporal, settings, account.account_id)
    return AccountChangeAccepted(
        workflow_id=workflow_id, account_id=account.account_id, status=account.status, revision=account.revision
    )
