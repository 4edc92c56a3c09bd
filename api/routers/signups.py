"""OTT self-signup (use case 2), called by the CMMS as it relays what the app user does.

The API translates: it validates, applies the per-number and per-client rate limits (shared by
every API process: api.rate_limit), hashes the typed code (the workflow never sees a code), and
calls the number's signup workflow by update. Wrong codes are counted per number across all its
signups: each verify holds a place in that count while the workflow judges the code, and gives it
back unless the code was wrong, so concurrent guesses through any API process get no extra tries.

With SIGNUP_VERIFICATION=cmms the CMMS texts and checks the code itself and confirms the number
with the password it issued (`confirm`); `verify` and `resend` are then refused.
"""

import asyncio
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Caller, Role
from api.deps import ReadSessionDep, SessionDep, SettingsDep, TemporalDep, require
from api.fields import SipPassword
from api.problems import Problem
from api.rate_limit import RateLimiter, Verdict, make_rate_limiter
from billing.db import FOR_CHANGE
from billing.models import Account, Customer, Reseller, Signup, SignupStatus, utcnow
from billing.otp import code_hmac, is_well_formed, password_hmac, same_hmac
from billing.phone import BadPhoneNumber, normalise
from billing.provisioning import effective_profile
from contracts.search_attributes import OpsState, search_attributes
from contracts.signups import (
    ACCOUNT_NOT_CLAIMABLE,
    PROVISIONING_FAILED,
    RESEND_COOLDOWN,
    SEND_LIMIT,
    SIGNUP_CLOSED,
    SIGNUP_EXPIRED,
    SMS_REJECTED,
    SMS_UNAVAILABLE,
    TOO_MANY_ATTEMPTS,
    WRONG_VERIFICATION,
    ConfirmRequest,
    OttSignupInput,
    SendCodeRequest,
    SignupPolicy,
    SignupView,
    Verification,
    VerifyRequest,
    VerifyResult,
    signup_workflow_id,
)
from core.settings import Settings
from workflows.ott_signup import OttSignupWorkflow

router = APIRouter(prefix="/v1/signups", tags=["signups"])
CmmsCaller = Annotated[Caller, Depends(require(Role.cmms))]
# A signup request meeting the number's previous signup as it closes waits this many times 0.2 s.
_START_ATTEMPTS = 10


class SignupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class SignupAccepted(BaseModel):
    signup_id: str
    expires_at: datetime


class CodeEntered(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(max_length=32)]


class Credentials(BaseModel):
    account_id: str
    password: str
    domain: str


class SignupVerified(BaseModel):
    status: SignupStatus
    account_id: str
    credentials: Credentials


class PasswordIssued(BaseModel):
    """The credentials the CMMS issued to the app (SIGNUP_VERIFICATION=cmms)."""

    model_config = ConfigDict(extra="forbid")

    password: SipPassword


class SignupConfirmed(BaseModel):
    status: SignupStatus
    account_id: str


class SignupPublic(BaseModel):
    """A signup as the CMMS sees it: never the number, the code or a password."""

    signup_id: str
    status: SignupStatus
    expires_at: datetime
    account_id: str | None


async def get_limiter(request: Request) -> RateLimiter:
    """The API process's handle on the shared signup limits (Redis or the billing database), made on first use."""
    limiter: RateLimiter | None = getattr(request.app.state, "signup_limiter", None)
    if limiter is None:
        services = request.app.state.services
        redis_url = services.settings.redis_url.get_secret_value() if services.settings.redis_url else None
        limiter = request.app.state.signup_limiter = make_rate_limiter(services.sessions, redis_url)
    return limiter


LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]


@router.post("", status_code=202, responses={429: {}, 503: {}})
async def start_signup(
    body: SignupCreate, caller: CmmsCaller, temporal: TemporalDep, settings: SettingsDep, limiter: LimiterDep
) -> SignupAccepted:
    """Send a code to the number; a signup already pending for it continues (no two live codes)."""
    try:
        e164 = normalise(body.phone_number, settings.allowed_countries)
    except BadPhoneNumber as err:
        raise _invalid("phone_number", str(err), "phone_number") from None
    await _limit(limiter, settings, caller, e164)
    for attempt in range(_START_ATTEMPTS):
        try:
            view = await temporal.execute_update_with_start_workflow(
                OttSignupWorkflow.send_code,
                SendCodeRequest(),
                start_workflow_operation=_start_operation(settings, caller, e164),
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            closing = isinstance(cause, ApplicationError) and cause.type in (SIGNUP_CLOSED, SIGNUP_EXPIRED)
            if not closing or attempt == _START_ATTEMPTS - 1:
                raise _update_problem(err) from None
            # The number's previous signup has just ended and its workflow is closing: a new one follows.
            await asyncio.sleep(0.2)
        else:
            return SignupAccepted(signup_id=view.signup_id, expires_at=view.expires_at)
    raise AssertionError("unreachable")


@router.post("/{signup_id}/resend", status_code=202, responses={404: {}, 410: {}, 429: {}, 503: {}})
async def resend_code(
    signup_id: str,
    caller: CmmsCaller,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> SignupAccepted:
    """Send a new code (the previous one stops working): 429 inside the cooldown or past the send limit."""
    _billing_verifies(settings)
    signup = await _pending(session, signup_id)
    await _limit(limiter, settings, caller, signup.phone_number)
    handle = temporal.get_workflow_handle_for(OttSignupWorkflow.run, signup_workflow_id(signup.phone_number))
    try:
        view: SignupView = await handle.execute_update(
            OttSignupWorkflow.send_code, SendCodeRequest(signup_id=signup_id)
        )
    except (WorkflowUpdateFailedError, RPCError) as err:
        raise _closed_problem((await _after_refusal(session, signup_id, err)).status) from None
    return SignupAccepted(signup_id=view.signup_id, expires_at=view.expires_at)


@router.post("/{signup_id}/verify", responses={404: {}, 409: {}, 410: {}, 422: {}, 429: {}, 503: {}})
async def verify_code(
    signup_id: str,
    body: CodeEntered,
    caller: CmmsCaller,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> SignupVerified:
    """Check the code the user typed; the right one answers the account's credentials for the app.

    The same right code again, within its lifetime (the answer was lost on the way), answers the same
    credentials and changes nothing."""
    _billing_verifies(settings)
    if not is_well_formed(body.code, settings.signup_code_digits):
        raise _invalid("code", f"the code is {settings.signup_code_digits} digits", "code_format")
    signup = await _signup(session, signup_id)
    # End the read transaction before anything else: on SQLite it holds the process's one connection
    # (the limiter's needs it) and the write lock (the workflow's activities need it).
    await session.commit()
    await _limit_verify(limiter, settings, caller, signup.phone_number)
    typed = code_hmac(settings, signup_id, body.code)
    if signup.status == SignupStatus.verified:
        return await _verified_again(session, settings, signup, typed)
    if signup.status != SignupStatus.pending:
        raise _closed_problem(signup.status)
    place = await _hold_wrong_code_place(limiter, settings, signup.phone_number)
    handle = temporal.get_workflow_handle_for(OttSignupWorkflow.run, signup_workflow_id(signup.phone_number))
    try:
        update = await handle.start_update(
            OttSignupWorkflow.verify,
            VerifyRequest(signup_id=signup_id, code_hmac=typed),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        result: VerifyResult = await asyncio.wait_for(update.result(), settings.signup_verify_timeout_seconds)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        await _give_back(limiter, signup.phone_number, place)
        # The account is being provisioned (the CMMS may be slow): the same code again picks it up.
        raise _retry_later("the account is still being provisioned; repeat the call with the same code") from None
    except (WorkflowUpdateFailedError, RPCError) as err:
        await _give_back(limiter, signup.phone_number, place)
        closed = await _after_refusal(session, signup_id, err)
        if closed.status == SignupStatus.verified:
            return await _verified_again(session, settings, closed, typed)
        raise _closed_problem(closed.status) from None
    if not result.verified or result.account_id is None:
        raise Problem(
            422,
            "the code is wrong" + ("" if result.attempts_left else "; no attempts are left"),
            title="Wrong code",
            attempts_left=result.attempts_left,
        )
    await _give_back(limiter, signup.phone_number, place)
    return SignupVerified(
        status=SignupStatus.verified,
        account_id=result.account_id,
        credentials=await _credentials(session, settings, signup_id),
    )


@router.post("/{signup_id}/confirm", responses={404: {}, 409: {}, 410: {}, 429: {}, 502: {}, 503: {}})
async def confirm_signup(
    signup_id: str,
    body: PasswordIssued,
    caller: CmmsCaller,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> SignupConfirmed:
    """The CMMS verified the number and issued the app's password: the account (ID = the number's
    digits) is created with it, or the number's OTT account takes it, and reaches the CMMS."""
    if settings.signup_verification != Verification.cmms:
        raise Problem(409, "billing verifies the code in this deployment: use verify", title="Billing verifies")
    signup = await _signup(session, signup_id)
    # End the read transaction before anything else: on SQLite it holds the process's one connection
    # (the limiter's needs it) and the write lock (the workflow's activities need it).
    await session.commit()
    await _limit_verify(limiter, settings, caller, signup.phone_number)
    issued = password_hmac(settings, signup_id, body.password.get_secret_value())
    if signup.status == SignupStatus.verified:
        return _confirmed_again(signup, issued)
    if signup.status != SignupStatus.pending:
        raise _closed_problem(signup.status)
    await _hold_password(session, signup_id, issued, body.password.get_secret_value())
    handle = temporal.get_workflow_handle_for(OttSignupWorkflow.run, signup_workflow_id(signup.phone_number))
    try:
        update = await handle.start_update(
            OttSignupWorkflow.confirm,
            ConfirmRequest(signup_id=signup_id, password_hmac=issued),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        result: VerifyResult = await asyncio.wait_for(update.result(), settings.signup_verify_timeout_seconds)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise _retry_later("the account is still being provisioned; repeat the call with the same password") from None
    except (WorkflowUpdateFailedError, RPCError) as err:
        closed = await _after_refusal(session, signup_id, err)
        if closed.status == SignupStatus.verified:
            return _confirmed_again(closed, issued)
        raise _closed_problem(closed.status) from None
    if result.account_id is None:
        raise Problem(502, "the account could not be provisioned")
    return SignupConfirmed(status=SignupStatus.verified, account_id=result.account_id)


@router.get("/{signup_id}", responses={404: {}})
async def get_signup(signup_id: str, _: CmmsCaller, session: ReadSessionDep) -> SignupPublic:
    return SignupPublic.model_validate(await _signup(session, signup_id), from_attributes=True)


# --- helpers ---


def _start_operation(settings: Settings, caller: Caller, e164: str) -> WithStartWorkflowOperation[Any, Any]:
    """Start the number's signup workflow unless one is pending, whose answer then names its own signup id."""
    return WithStartWorkflowOperation(
        OttSignupWorkflow.run,
        OttSignupInput(
            signup_id=f"su-{secrets.token_urlsafe(16)}",
            phone_number=e164,
            policy=_policy(settings),
            client_id=caller.label,
            verification=Verification(settings.signup_verification),
        ),
        id=signup_workflow_id(e164),
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(state=OpsState.pending),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


def _policy(settings: Settings) -> SignupPolicy:
    return SignupPolicy(
        code_ttl_seconds=settings.signup_code_ttl_seconds,
        max_attempts=settings.signup_max_attempts,
        max_sends=settings.signup_max_sends,
        resend_cooldown_seconds=settings.signup_resend_cooldown_seconds,
    )


async def _limit(limiter: RateLimiter, settings: Settings, caller: Caller, e164: str) -> None:
    """Per-client, then per-number: a request over either limit is answered 429 and sends nothing."""
    verdict = await limiter.hit(
        f"signup:client:{caller.label}", settings.signup_client_limit, settings.signup_client_window_seconds
    )
    if verdict.allowed:
        verdict = await limiter.hit(
            f"signup:number:{e164}", settings.signup_number_limit, settings.signup_number_window_seconds
        )
    if verdict.retry_after is not None:
        raise _too_many("too many signup requests; try again later", retry_after=verdict.retry_after)


async def _limit_verify(limiter: RateLimiter, settings: Settings, caller: Caller, e164: str) -> None:
    """Verify (and confirm) calls per client, then per number: 429 past either."""
    verdict = await limiter.hit(
        f"verify:client:{caller.label}",
        settings.signup_verify_client_limit,
        settings.signup_verify_client_window_seconds,
    )
    if verdict.allowed:
        verdict = await limiter.hit(
            f"verify:number:{e164}", settings.signup_verify_number_limit, settings.signup_verify_number_window_seconds
        )
    if verdict.retry_after is not None:
        raise _too_many("too many verification requests; try again later", retry_after=verdict.retry_after)


async def _hold_wrong_code_place(limiter: RateLimiter, settings: Settings, e164: str) -> Verdict:
    """A place in the number's count of wrong codes, held while the workflow judges this one: 429 when none is left."""
    verdict = await limiter.hit(
        f"wrong-code:{e164}", settings.signup_wrong_code_limit, settings.signup_wrong_code_window_seconds
    )
    if verdict.retry_after is not None:
        raise _too_many("too many wrong codes for this number; try again later", retry_after=verdict.retry_after)
    return verdict


async def _give_back(limiter: RateLimiter, e164: str, place: Verdict) -> None:
    """The code was not judged wrong: its place in the count of wrong codes is free again."""
    if place.token is not None:
        await limiter.take_back(f"wrong-code:{e164}", place.token)


def _billing_verifies(settings: Settings) -> None:
    if settings.signup_verification == Verification.cmms:
        raise Problem(
            409,
            "the CMMS sends and verifies the codes in this deployment; it confirms the number with confirm",
            title="The CMMS verifies",
        )


async def _verified_again(session: AsyncSession, settings: Settings, signup: Signup, typed: str) -> SignupVerified:
    """A verify repeated after its answer was lost: the same right code, within its lifetime, answers
    the same credentials; anything else learns only that the signup is verified."""
    repeat = signup.secret_hmac is not None and same_hmac(signup.secret_hmac, typed)
    if not repeat or utcnow() >= signup.expires_at or signup.account_id is None:
        raise Problem(409, "the signup is already verified")
    return SignupVerified(
        status=SignupStatus.verified,
        account_id=signup.account_id,
        credentials=await _credentials(session, settings, signup.signup_id),
    )


def _confirmed_again(signup: Signup, issued: str) -> SignupConfirmed:
    if signup.secret_hmac is None or not same_hmac(signup.secret_hmac, issued) or signup.account_id is None:
        raise Problem(409, "the signup is already verified with another password")
    return SignupConfirmed(status=SignupStatus.verified, account_id=signup.account_id)


async def _hold_password(session: AsyncSession, signup_id: str, issued: str, password: str) -> None:
    """Keep the CMMS's password on the signup's row until the account takes it (never in a workflow):
    the first password confirmed wins; another one for the signup is refused."""
    async with session.begin():
        signup = await session.get_one(Signup, signup_id, with_for_update=FOR_CHANGE)
        if signup.secret_hmac is None:
            signup.secret_hmac = issued
            signup.requested_password = password
            session.add(signup)
        elif not same_hmac(signup.secret_hmac, issued):
            raise Problem(409, "the signup is being confirmed with another password")


async def _signup(session: AsyncSession, signup_id: str) -> Signup:
    signup = await session.get(Signup, signup_id) if len(signup_id) <= 64 else None
    if signup is None:
        raise Problem(404, f"signup {signup_id!r} does not exist")
    return signup


async def _pending(session: AsyncSession, signup_id: str) -> Signup:
    """The signup, if it can still take a code; otherwise the problem its end state calls for."""
    signup = await _signup(session, signup_id)
    if signup.status != SignupStatus.pending:
        raise _closed_problem(signup.status)
    # End the read transaction before waiting on the workflow: on SQLite it holds the write lock,
    # which the workflow's activities need.
    await session.commit()
    return signup


async def _after_refusal(session: AsyncSession, signup_id: str, err: Exception) -> Signup:
    """An update the workflow refused, or a workflow already gone: the signup as it now stands, once it
    has ended (the caller answers for its end state); the problem to answer otherwise."""
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause
        if not (isinstance(cause, ApplicationError) and cause.type == SIGNUP_CLOSED):
            raise _update_problem(err)
    elif isinstance(err, RPCError) and err.status != RPCStatusCode.NOT_FOUND:
        raise err  # Temporal unavailable: the app's 503 handler answers
    session.expire_all()
    signup = await _signup(session, signup_id)
    await session.commit()
    if signup.status == SignupStatus.pending:
        raise Problem(409, "the signup is busy; repeat the request in a moment")
    return signup


def _closed_problem(status: SignupStatus) -> Problem:
    if status == SignupStatus.expired:
        return Problem(410, "the signup has expired; start a new one")
    if status == SignupStatus.failed:
        return _too_many("the signup failed after too many attempts; start a new one")
    return Problem(409, "the signup is already verified")


def _update_problem(err: WorkflowUpdateFailedError) -> Problem:
    """The workflow's refusal, by its ApplicationError type, as an HTTP problem."""
    cause = err.cause
    kind = cause.type if isinstance(cause, ApplicationError) else None
    message = cause.message if isinstance(cause, ApplicationError) else "the request could not be completed"
    if kind == RESEND_COOLDOWN and isinstance(cause, ApplicationError):
        return _too_many(message, retry_after=int(cause.details[0]) if cause.details else 30)
    if kind in (TOO_MANY_ATTEMPTS, SEND_LIMIT):
        return _too_many(message)
    if kind == SIGNUP_EXPIRED:
        return Problem(410, message)
    if kind == SIGNUP_CLOSED:
        return Problem(409, message)
    if kind == ACCOUNT_NOT_CLAIMABLE:
        return Problem(409, message, title="Account not claimable")
    if kind == WRONG_VERIFICATION:
        return Problem(409, message, title="Another verification mode")
    if kind == SMS_UNAVAILABLE:
        return _retry_later("the SMS gateway is unavailable; repeat the request shortly")
    if kind == SMS_REJECTED:
        return Problem(502, "the SMS gateway refused the message")
    if kind == PROVISIONING_FAILED:
        return Problem(502, message)
    return Problem(500, "the signup could not be completed")


def _too_many(detail: str, *, retry_after: int | None = None) -> Problem:
    problem = Problem(429, detail)
    if retry_after is not None:
        problem.headers["Retry-After"] = str(retry_after)
    return problem


def _retry_later(detail: str) -> Problem:
    problem = Problem(503, detail)
    problem.headers["Retry-After"] = "5"
    return problem


def _invalid(field: str, message: str, kind: str) -> Problem:
    return Problem(422, message, title="Validation failed", errors=[{"field": field, "message": message, "type": kind}])


async def _credentials(session: AsyncSession, settings: Settings, signup_id: str) -> Credentials:
    """Read from billing here, so the password never passes through the workflow; only the password
    this signup set: once a later signup of the number has renewed it, this one answers nothing."""
    session.expire_all()
    signup = await session.get_one(Signup, signup_id)
    account = await session.get_one(Account, signup.account_id)
    if signup.account_revision is not None and account.revision != signup.account_revision:
        raise Problem(409, "the number's credentials have been renewed since; start a new signup")
    customer = await session.get_one(Customer, account.customer_id)
    reseller = await session.get(Reseller, customer.reseller_id) if customer.reseller_id else None
    domain = effective_profile(customer, reseller, settings).domain
    return Credentials(account_id=account.account_id, password=account.sip_password, domain=domain)
