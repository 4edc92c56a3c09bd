"""Service wallets and account service policies (messaging by wallet), under `/v1/accounts/{account_id}`.

A wallet change (billing.wallets: top-ups with a lifetime, charges taking the units expiring first,
expiries) is committed with the outbox record that has the account's workflow push the *current*
messaging state to the CMMS, where the account's product lets billing drive it.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.config import JsonDict

from api.auth import Role
from api.deps import CallerDep, OutboxDep, require
from api.fields import WHOLE, AnyId, DateTime
from api.problems import Problem
from billing.messaging import MESSAGING
from billing.models import MessagingState, utcnow
from billing.wallets import MAX_BALANCE, Movement, MovementKind, WalletSnapshot
from services import accounts, wallets

router = APIRouter(prefix="/v1/accounts", tags=["wallets"])

_admin = [Depends(require(Role.admin))]
_admin_or_cmms = [Depends(require(Role.cmms))]  # admin may do everything

Units = Annotated[StrictInt, Field(gt=0, le=MAX_BALANCE), WHOLE]
_KEY_MAX = 200  # the ledger's column


async def _idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)] = None,
) -> str:
    """The money movement's `Idempotency-Key`: required, so that a retried top-up or charge is applied
    once. Checked before the body (a sub-dependency runs before the body is validated): a caller that
    never sends one learns it from its first call, whatever its body."""
    if key is None or not key.strip():
        raise Problem(400, "an Idempotency-Key header is required: it applies a retried top-up or charge once")
    if len(key) > _KEY_MAX:
        raise Problem(400, f"the Idempotency-Key header must be at most {_KEY_MAX} characters")
    return key


IdempotencyKey = Annotated[str, Depends(_idempotency_key)]
# The header as the OpenAPI document shows it (the dependency reads it itself, to answer 400 before the body).
_KEY_DOCUMENTED: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "Applies a retried request once: the same key with the same body answers as the first "
            "call did, with another body 422. Missing: 400.",
            "schema": {"type": "string", "minLength": 1, "maxLength": _KEY_MAX, "pattern": r"\S"},
        }
    ]
}
_KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No Idempotency-Key header (checked before the body), or the body is not valid JSON"}
}


class WalletCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Literal["messaging"]
    balance: Annotated[StrictInt, Field(ge=0, le=MAX_BALANCE), WHOLE]
    expires_at: DateTime | None = None


_BOTH_LIFETIMES: JsonDict = {
    "required": ["valid_days", "expires_at"],
    "properties": {"valid_days": {"type": "integer"}, "expires_at": {"type": "string"}},
}


class TopUp(BaseModel):
    """Units with their own lifetime: `valid_days` from now, or until `expires_at`; with neither, the
    product's default validity (its initial wallet's), else they never expire."""

    # Both given is refused (below): the schema says so too.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": _BOTH_LIFETIMES})

    amount: Units
    valid_days: Annotated[StrictInt, Field(ge=1, le=36500), WHOLE] | None = None
    expires_at: DateTime | None = Field(default=None, description="When these units expire")

    @model_validator(mode="after")
    def _one_lifetime(self) -> "TopUp":
        if self.valid_days is not None and self.expires_at is not None:
            raise ValueError("give valid_days or expires_at, not both")
        return self


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


class LedgerEntryPublic(BaseModel):
    """A top-up (+), a charge (-) or an expiry (-, dated when the units expired); their sum is the balance."""

    kind: MovementKind
    amount: int
    at: datetime
    expires_at: datetime | None = None  # a top-up's (or expired units') lifetime


class LedgerPagePublic(BaseModel):
    items: list[LedgerEntryPublic]
    next: str | None  # the cursor of the next page; null on the last


class AccountMessagingPolicy(BaseModel):
    """An account's own messaging policy: stored and shown, never used to decide the push (the product's is)."""

    model_config = ConfigDict(extra="forbid")

    push_events: StrictBool


class AccountServicePolicies(BaseModel):
    account_id: str
    service_policies: dict[str, Any]


@router.post("/{account_id}/wallets", status_code=201, dependencies=_admin)
async def open_wallet(account_id: AnyId, body: WalletCreate, outbox: OutboxDep) -> WalletPublic:
    """Open the account's wallet for a service, with an opening balance and an optional expiry. The account an
    accepted order names may not exist yet: the wallet is held on the order and opened with the account."""
    _check_future("expires_at", body.expires_at)
    return _view(await wallets.open_wallet(outbox, account_id, body.service, body.balance, body.expires_at))


@router.get("/{account_id}/wallets/messaging", dependencies=_admin)
async def get_messaging_wallet(account_id: AnyId, outbox: OutboxDep) -> WalletPublic:
    return _view(await wallets.get_wallet(outbox, account_id, MESSAGING))


@router.post(
    "/{account_id}/wallets/messaging/top-ups",
    dependencies=_admin,
    openapi_extra=_KEY_DOCUMENTED,
    responses=_KEY_ERRORS,
)
async def top_up(
    account_id: AnyId,
    idempotency_key: IdempotencyKey,
    body: TopUp,
    outbox: OutboxDep,
) -> WalletPublic:
    """Add units with their own lifetime; a top-up that makes the wallet usable resumes messaging (after
    everything expired, it starts a new balance)."""
    _check_future("expires_at", body.expires_at)
    movement = Movement(MovementKind.top_up, body.amount, body.expires_at, idempotency_key, valid_days=body.valid_days)
    return _view(await wallets.apply_movement(outbox, account_id, MESSAGING, movement))


@router.post(
    "/{account_id}/wallets/messaging/charges",
    dependencies=_admin_or_cmms,
    openapi_extra=_KEY_DOCUMENTED,
    responses=_KEY_ERRORS,
)
async def charge(
    account_id: AnyId,
    idempotency_key: IdempotencyKey,
    body: Charge,
    outbox: OutboxDep,
) -> WalletPublic:
    """Take units; more than the balance is refused with 409 and nothing is charged."""
    movement = Movement(MovementKind.charge, body.amount, None, idempotency_key)
    return _view(await wallets.apply_movement(outbox, account_id, MESSAGING, movement))


@router.get("/{account_id}/wallets/messaging/movements", dependencies=_admin)
async def list_movements(
    account_id: AnyId,
    outbox: OutboxDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next` of the previous page")] = None,
) -> LedgerPagePublic:
    """The wallet's ledger, oldest first: top-ups, charges and expiries; their amounts sum to the balance."""
    page = await wallets.ledger(outbox, account_id, MESSAGING, limit=limit, after=int(cursor) if cursor else None)
    items = [
        LedgerEntryPublic(kind=entry.kind, amount=entry.amount, at=entry.at, expires_at=entry.expires_at)
        for entry in page.entries
    ]
    return LedgerPagePublic(items=items, next=str(page.next_after) if page.next_after is not None else None)


@router.put("/{account_id}/service-policies/messaging", dependencies=_admin)
async def put_account_messaging_policy(
    account_id: AnyId, body: AccountMessagingPolicy, outbox: OutboxDep, caller: CallerDep
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


def _view(snapshot: WalletSnapshot) -> WalletPublic:
    return WalletPublic(
        account_id=snapshot.account_id,
        service=snapshot.service,
        balance=snapshot.balance,
        expires_at=snapshot.expires_at,
        messaging=MessagingState(snapshot.messaging_state) if snapshot.messaging_state else None,
        push_events=snapshot.push_events,
    )
