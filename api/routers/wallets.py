"""Service wallets and account service policies (use case 4), under `/v1/accounts/{account_id}`.

A wallet change (services.wallets) is committed with the outbox record that has the account's workflow
push the *current* messaging state to the CMMS, where the account's product lets billing drive it.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.problems import Problem
from billing.messaging import MESSAGING
from billing.models import MessagingState, utcnow
from services import accounts, wallets

router = APIRouter(prefix="/v1/accounts", tags=["wallets"])

_admin = [Depends(require(Role.admin))]
_admin_or_cmms = [Depends(require(Role.cmms))]  # admin may do everything

Units = Annotated[StrictInt, Field(gt=0, le=wallets.MAX_BALANCE)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Applies a retried request once"),
]


class WalletCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Literal["messaging"]
    balance: Annotated[StrictInt, Field(ge=0, le=wallets.MAX_BALANCE)]
    expires_at: AwareDatetime | None = None


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Units
    expires_at: AwareDatetime | None = Field(default=None, description="Extends the expiry; never shortens it")


class Charge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Units


class WalletPublic(BaseModel):
    account_id: str
    service: str
    balance: int
    expires_at: datetime | None
    # As last confirmed by the CMMS; null until the CMMS has been told (or when the product's policy
    # does not let billing drive messaging).
    messaging: MessagingState | None
    push_events: bool  # the product's messaging policy: whether billing drives the CMMS's messaging


class MessagingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_events: bool


class AccountServicePolicies(BaseModel):
    account_id: str
    service_policies: dict[str, Any]


@router.post("/{account_id}/wallets", status_code=201, dependencies=_admin)
async def open_wallet(account_id: str, body: WalletCreate, outbox: OutboxDep) -> WalletPublic:
    """Open the account's wallet for a service, with an opening balance and an optional expiry."""
    _check_future("expires_at", body.expires_at)
    return _view(await wallets.open_wallet(outbox, account_id, body.service, body.balance, body.expires_at))


@router.get("/{account_id}/wallets/messaging", dependencies=_admin)
async def get_messaging_wallet(account_id: str, outbox: OutboxDep) -> WalletPublic:
    return _view(await wallets.get_wallet(outbox, account_id, MESSAGING))


@router.post("/{account_id}/wallets/messaging/top-ups", dependencies=_admin)
async def top_up(
    account_id: str,
    body: TopUp,
    outbox: OutboxDep,
    idempotency_key: IdempotencyKey = None,
) -> WalletPublic:
    """Add units (and perhaps extend the expiry); a top-up that makes the wallet usable resumes messaging."""
    _check_future("expires_at", body.expires_at)
    movement = wallets.Movement(wallets.MovementKind.top_up, body.amount, body.expires_at, idempotency_key)
    return _view(await wallets.apply_movement(outbox, account_id, MESSAGING, movement))


@router.post("/{account_id}/wallets/messaging/charges", dependencies=_admin_or_cmms)
async def charge(
    account_id: str,
    body: Charge,
    outbox: OutboxDep,
    idempotency_key: IdempotencyKey = None,
) -> WalletPublic:
    """Take units; more than the balance is refused with 409 and nothing is charged."""
    movement = wallets.Movement(wallets.MovementKind.charge, body.amount, None, idempotency_key)
    return _view(await wallets.apply_movement(outbox, account_id, MESSAGING, movement))


@router.put("/{account_id}/service-policies/messaging", dependencies=_admin)
async def put_account_messaging_policy(
    account_id: str, body: MessagingPolicy, outbox: OutboxDep, caller: CallerDep
) -> AccountServicePolicies:
    """Store the account's own messaging policy: shown, but never used to decide the push (the product's is)."""
    policies = await accounts.set_messaging_policy(outbox, account_id, body.model_dump(), caller.label)
    return AccountServicePolicies(account_id=account_id, service_policies=policies)


def _check_future(field: str, value: datetime | None) -> None:
    if value is not None and value <= utcnow():
        raise Problem(
            422,
            f"{field} must be in the future",
            title="Validation failed",
            errors=[{"field": f"body.{field}", "message": "must be in the future", "type": "datetime_future"}],
        )


def _view(snapshot: wallets.WalletSnapshot) -> WalletPublic:
    return WalletPublic(
        account_id=snapshot.account_id,
        service=snapshot.service,
        balance=snapshot.balance,
        expires_at=snapshot.expires_at,
        messaging=MessagingState(snapshot.messaging_state) if snapshot.messaging_state else None,
        push_events=snapshot.push_events,
    )
