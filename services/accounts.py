"""Accounts changed by operations staff: a password, an IMEI, a block, a termination.

A change is stored with a raised revision, and in the same transaction the account's workflow is
told to push (the outbox): it pushes billing's current state to the CMMS one push at a time, so
changes arrive in the order they were made.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.db import FOR_CHANGE, snapshot
from billing.messaging import MESSAGING
from billing.models import Account, AccountStatus, OutboxKind, Signup, utcnow
from contracts.phone import BadPhoneNumber, normalise
from contracts.provisioning import account_workflow_id
from services import audit
from services.errors import Conflict, Invalid, NotFound
from services.outbox import Outbox, Tx
from services.pagination import KeysetPage, PageRequest, page


@dataclass(frozen=True)
class AccountChange:
    """What may change on an account; None leaves a field as it is."""

    password: str | None = None
    imei: str | None = None
    blocked: bool | None = None


@dataclass(frozen=True)
class AccountFilter:
    """What a list of accounts is narrowed to; None: any. `phone_number` in any international format."""

    customer_id: str | None = None
    product_id: str | None = None
    status: AccountStatus | None = None
    imei: str | None = None
    phone_number: str | None = None


@dataclass(frozen=True)
class ChangeAccepted:
    workflow_id: str
    account_id: str
    status: AccountStatus
    revision: int


async def get_account(outbox: Outbox, account_id: str) -> Account:
    async with snapshot(outbox.sessions) as session:
        account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id!r} does not exist")
    return account


async def list_accounts(outbox: Outbox, where: AccountFilter, request: PageRequest) -> KeysetPage[Account]:
    """Accounts oldest first. By IMEI: every account that had it (a terminated one keeps it on record).
    By phone number: the OTT account of that number (its id is the number's digits), and any account
    a signup of that number was verified into."""
    query = select(Account)
    for column, value in (
        (Account.customer_id, where.customer_id),
        (Account.product_id, where.product_id),
        (Account.status, where.status),
        (Account.imei, where.imei),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.phone_number is not None:
        e164 = phone_number(where.phone_number)
        signed_up = select(Signup.account_id).where(Signup.phone_number == e164, col(Signup.account_id).is_not(None))
        query = query.where(or_(col(Account.account_id) == e164.lstrip("+"), col(Account.account_id).in_(signed_up)))
    async with snapshot(outbox.sessions) as session:
        return await page(session, query, Account, "account_id", "accounts", request)


def phone_number(raw: str) -> str:
    """A number to look up, as signups store it (E.164); any country, since it is a lookup."""
    try:
        return normalise(raw, frozenset())
    except BadPhoneNumber as err:
        raise Invalid("phone_number is not a mobile number", [{"field": "phone_number", "message": str(err)}]) from None


async def change_account(outbox: Outbox, account_id: str, change: AccountChange, actor: str) -> ChangeAccepted:
    """Change the password, the IMEI or the block state; the CMMS gets the change within seconds."""
    async with outbox.transaction() as tx:
        account = await _changeable(tx.session, account_id)
        before = {"imei": account.imei, "status": account.status.value}
        if change.imei is not None and change.imei != account.imei:
            holder = await tx.session.exec(
                select(Account.account_id).where(
                    Account.imei == change.imei,
                    col(Account.status) != AccountStatus.terminated,
                    col(Account.account_id) != account_id,
                )
            )
            if holder.first() is not None:
                raise Conflict(f"IMEI {change.imei} already belongs to another account")
            account.imei = change.imei
        if change.password is not None:
            account.sip_password = change.password
        if change.blocked is not None:
            account.status = AccountStatus.blocked if change.blocked else AccountStatus.active
        after = {"imei": account.imei, "status": account.status.value}
        secrets = ["password"] if change.password is not None else []
        audit.record(tx.session, actor, "account", account_id, "update", audit.diff(before, after), secrets)
        return _changed(tx, account)


async def terminate_account(outbox: Outbox, account_id: str, actor: str) -> ChangeAccepted:
    """Terminate the account and remove it from the CMMS; a repeat answers the same (and tells the
    workflow again, which makes sure the record is gone)."""
    async with outbox.transaction() as tx:
        account = await _changeable(tx.session, account_id, terminated_ok=True)
        if account.status == AccountStatus.terminated:
            tx.tell(OutboxKind.account, account_id)
            return _accepted(account)
        changes = audit.diff({"status": account.status.value}, {"status": AccountStatus.terminated.value})
        audit.record(tx.session, actor, "account", account_id, "delete", changes)
        account.status = AccountStatus.terminated  # its IMEI stays on record but is free for another account
        return _changed(tx, account)


async def set_messaging_policy(outbox: Outbox, account_id: str, policy: dict[str, Any], actor: str) -> dict[str, Any]:
    """Store the account's own messaging policy: shown, never used to decide the push (the product's is)."""
    async with outbox.transaction() as tx:
        account = await tx.session.get(Account, account_id, with_for_update=FOR_CHANGE)
        if account is None:
            raise NotFound(f"account {account_id!r} does not exist")
        before = dict(account.service_policies)
        account.service_policies = account.service_policies | {MESSAGING: policy}
        changes = audit.diff({"service_policies": before}, {"service_policies": account.service_policies})
        audit.record(tx.session, actor, "account", account_id, "update", changes)
        account.updated_at = utcnow()
        tx.session.add(account)
        return account.service_policies


async def _changeable(session: AsyncSession, account_id: str, *, terminated_ok: bool = False) -> Account:
    """The account, locked until the change commits (two changes at once are applied one after the other)."""
    account = await session.get(Account, account_id, with_for_update=FOR_CHANGE)
    if account is None:
        raise NotFound(f"account {account_id!r} does not exist")
    if account.status == AccountStatus.pending:
        raise Conflict(f"account {account_id!r} is still being provisioned by its order; try again shortly")
    if account.status == AccountStatus.terminated and not terminated_ok:
        raise Conflict(f"account {account_id!r} is terminated")
    return account


def _changed(tx: Tx, account: Account) -> ChangeAccepted:
    account.revision += 1
    account.updated_at = utcnow()
    tx.session.add(account)
    tx.tell(OutboxKind.account, account.account_id)
    return _accepted(account)


def _accepted(account: Account) -> ChangeAccepted:
    return ChangeAccepted(
        workflow_id=account_workflow_id(account.account_id),
        account_id=account.account_id,
        status=account.status,
        revision=account.revision,
    )
