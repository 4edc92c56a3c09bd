"""OTT self-signup, called by the CMMS as it relays what the app user does: HTTP only,
the rules are services.signups'."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, StringConstraints

from api.auth import Caller, Role
from api.deps import StateDep, require
from api.fields import AnyId, MobileNumber, SipPassword
from billing.models import SmsStatus
from contracts.signups import SignupState
from services.signups import Credentials, Signups

router = APIRouter(prefix="/v1/signups", tags=["signups"])
CmmsCaller = Annotated[Caller, Depends(require(Role.cmms))]


class SignupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number: MobileNumber


class SignupAccepted(BaseModel):
    signup_id: str
    expires_at: datetime


class CodeEntered(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Exactly SIGNUP_CODE_DIGITS digits (services.signups), as the OpenAPI document states (api.openapi).
    code: Annotated[str, StringConstraints(max_length=32)]


class CredentialsPublic(BaseModel):
    account_id: str
    password: str
    domain: str


class SignupVerified(BaseModel):
    status: SignupState
    account_id: str
    credentials: CredentialsPublic


class PasswordIssued(BaseModel):
    """The credentials the CMMS issued to the app (SIGNUP_VERIFICATION=cmms)."""

    model_config = ConfigDict(extra="forbid")

    password: SipPassword


class SignupConfirmed(BaseModel):
    status: SignupState
    account_id: str


class SmsReport(BaseModel):
    sent_at: datetime
    status: SmsStatus
    error: str | None = None  # the gateway's reason, when it refused the message


class SignupPublic(BaseModel):
    """A signup as the CMMS sees it: never the number, the code or a password."""

    signup_id: str
    status: SignupState
    expires_at: datetime
    account_id: str | None
    sms: list[SmsReport] = []  # every code SMS, oldest first, as its delivery reports left it


# What each refusal of a signup call means (api.openapi adds those every route of its kind can answer).
_REFUSALS: dict[int, str] = {
    404: "No such signup",
    409: "The signup is already verified, busy, or not verified this way in this deployment (SIGNUP_VERIFICATION)",
    410: "The signup has expired: start a new one",
    422: "The code is not well formed, or wrong (`attempts_left` says how many tries remain)",
    429: "Past a rate limit (`Retry-After`), the resend cooldown, or the signup's attempts or sends",
    502: "The SMS gateway refused the message, or the account could not be provisioned",
    503: "The SMS gateway, the billing database or Temporal is unavailable, or the account is still being "
    "provisioned: repeat the request",
}


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": _REFUSALS[status]} for status in statuses}


async def get_signups(state: StateDep) -> Signups:
    return state.signups


SignupsDep = Annotated[Signups, Depends(get_signups)]


@router.post("", status_code=202, responses=_answers(409, 410, 429, 502, 503))
async def start_signup(body: SignupCreate, caller: CmmsCaller, signups: SignupsDep) -> SignupAccepted:
    """Send a code to the number; a signup already pending for it continues (no two live codes)."""
    view = await signups.start(caller.label, body.phone_number)
    return SignupAccepted(signup_id=view.signup_id, expires_at=view.expires_at)


@router.post("/{signup_id}/resend", status_code=202, responses=_answers(404, 409, 410, 429, 502, 503))
async def resend_code(signup_id: AnyId, caller: CmmsCaller, signups: SignupsDep) -> SignupAccepted:
    """Send a new code (the previous one stops working): 429 inside the cooldown or past the send limit."""
    view = await signups.resend(caller.label, signup_id)
    return SignupAccepted(signup_id=view.signup_id, expires_at=view.expires_at)


@router.post("/{signup_id}/verify", responses=_answers(404, 409, 410, 422, 429, 502, 503))
async def verify_code(signup_id: AnyId, body: CodeEntered, caller: CmmsCaller, signups: SignupsDep) -> SignupVerified:
    """Check the code the user typed; the right one answers the account's credentials for the app.

    The same right code again, within its lifetime (the answer was lost on the way), answers the same
    credentials and changes nothing."""
    account_id, credentials = await signups.verify(caller.label, signup_id, body.code)
    return SignupVerified(status=SignupState.verified, account_id=account_id, credentials=_public(credentials))


@router.post("/{signup_id}/confirm", responses=_answers(404, 409, 410, 429, 502, 503))
async def confirm_signup(
    signup_id: AnyId, body: PasswordIssued, caller: CmmsCaller, signups: SignupsDep
) -> SignupConfirmed:
    """The CMMS verified the number and issued the app's password: the account (ID = the number's
    digits) is created with it, or the number's OTT account takes it, and reaches the CMMS."""
    account_id = await signups.confirm(caller.label, signup_id, body.password.get_secret_value())
    return SignupConfirmed(status=SignupState.verified, account_id=account_id)


@router.get("/{signup_id}", responses=_answers(404))
async def get_signup(signup_id: AnyId, _: CmmsCaller, signups: SignupsDep) -> SignupPublic:
    signup, messages = await signups.get(signup_id)
    view = SignupPublic.model_validate(signup, from_attributes=True)
    view.sms = [SmsReport.model_validate(message, from_attributes=True) for message in messages]
    return view


def _public(credentials: Credentials) -> CredentialsPublic:
    return CredentialsPublic(
        account_id=credentials.account_id, password=credentials.password, domain=credentials.domain
    )
