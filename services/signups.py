"""OTT self-signup: the rules around the number's signup workflow, called by the CMMS as
it relays what the app user does.

It applies the rate limits and budgets (shared by every API process: services.rate_limit,
services.signup_budgets), hashes the typed code (the workflow never sees a code), and calls the number's
signup workflow by update: the answer (the credentials) must wait for the workflow, so these calls
meet Temporal within the request, unlike a billing change (services.outbox).

The limits run from the narrowest to the widest: the number's, then the range's and the day's SMS
budgets, then the caller's (per API key), so a request refused for one number or range never spends
what the caller's other requests share; and a budget counts what was actually done (a code sent, a code
judged): a place held for a request that did nothing is given back. Wrong codes are counted per number
across all its signups: each verify holds a place in that count while the workflow judges the code,
and gives it back when the code was right, so concurrent guesses through any API process get no extra
tries; a verify that timed out keeps its place (the workflow may have counted the guess).

With SIGNUP_VERIFICATION=cmms the CMMS texts and checks the code itself and confirms the number
with the password it issued (`confirm`); `verify` and `resend` are then refused.
"""

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from billing.db import FOR_CHANGE, SessionMaker, snapshot, transaction
from billing.models import Account, Customer, Reseller, Signup, SmsMessage, utcnow
from billing.otp import code_hmac, is_well_formed, password_hmac
from billing.provisioning import effective_profile
from billing.sms_reports import sent_sms
from contracts.phone import BadPhoneNumber, normalise
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
    SignupState,
    SignupView,
    Verification,
    VerifyRequest,
    same_hmac,
    signup_workflow_id,
)
from contracts.workflows import SIGNUP_CONFIRM, SIGNUP_SEND_CODE, SIGNUP_VERIFY
from core import gateway
from core.settings import ProvisioningSettings, SignupSettings
from services.errors import Conflict, Gone, Invalid, NotFound, ServiceError, ServiceUnavailable, TooMany, Upstream
from services.rate_limit import RateLimiter
from services.signup_budgets import Held, SignupBudgets, refusal

# A signup request meeting the number's previous signup as it closes waits this many times 0.2 s.
_START_ATTEMPTS = 10


@dataclass(frozen=True)
class Credentials:
    account_id: str
    password: str
    domain: str


class Signups:
    """The signup calls of one API process: billing, Temporal, the settings and the shared limits."""

    def __init__(
        self,
        sessions: SessionMaker,
        temporal: Client,
        settings: SignupSettings,
        limiter: RateLimiter,
        *,
        provisioning: ProvisioningSettings,
        secret_key: SecretStr,
        task_queue: str,
    ) -> None:
        self._sessions = sessions
        self._temporal = temporal
        self._settings = settings
        self._provisioning = provisioning  # the domain in the credentials
        self._secret_key = secret_key  # the codes' and passwords' keyed hashes
        self._task_queue = task_queue  # the signup workflows'
        self.limiter = limiter
        self.budgets = SignupBudgets(limiter, settings)

    async def start(self, client_label: str, phone_number: str) -> SignupView:
        """Send a code to the number; a signup already pending for it continues (no two live codes)."""
        settings = self._settings
        try:
            e164 = normalise(phone_number, settings.allowed_countries)
        except BadPhoneNumber as err:
            raise _invalid("phone_number", str(err), "phone_number") from None
        spent = await self._hold_send(client_label, e164)
        for attempt in range(_START_ATTEMPTS):
            try:
                view = await asyncio.wait_for(
                    gateway.send_signup_code(self._temporal, self._task_queue, self._start_input(client_label, e164)),
                    settings.send_timeout_seconds,
                )
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                # The workflow may still send the code: the budgets keep its places, and the request
                # repeated continues the number's pending signup.
                raise ServiceUnavailable(
                    "the signup service did not answer in time; repeat the request shortly"
                ) from None
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                closing = isinstance(cause, ApplicationError) and cause.type in (SIGNUP_CLOSED, SIGNUP_EXPIRED)
                if not closing or attempt == _START_ATTEMPTS - 1:
                    await self._nothing_sent(spent, err)
                    raise _update_refusal(err) from None
                # The number's previous signup has just ended and its workflow is closing: a new one follows.
                await asyncio.sleep(0.2)
            else:
                await self._sent(spent, view)
                return view
        raise AssertionError("unreachable")

    async def resend(self, client_label: str, signup_id: str) -> SignupView:
        """Send a new code (the previous one stops working): refused inside the cooldown or past the send limit."""
        self._billing_verifies()
        signup = await self._signup(signup_id)
        if signup.status != SignupState.pending:
            raise _closed(signup.status)
        spent = await self._hold_send(client_label, signup.phone_number)
        try:
            view = await gateway.update(
                self._temporal, SIGNUP_SEND_CODE, _workflow_id(signup), SendCodeRequest(signup_id=signup_id)
            )
        except (WorkflowUpdateFailedError, RPCError) as err:
            await self._nothing_sent(spent, err)
            raise _closed((await self._after_refusal(signup_id, err)).status) from None
        await self._sent(spent, view)
        return view

    async def verify(self, client_label: str, signup_id: str, code: str) -> tuple[str, Credentials]:
        """Check the code the user typed; the right one answers the account's credentials for the app.

        The same right code again, within its lifetime (the answer was lost on the way), answers the same
        credentials and changes nothing."""
        settings = self._settings
        self._billing_verifies()
        if not is_well_formed(code, settings.code_digits):
            raise _invalid("code", f"the code is {settings.code_digits} digits", "code_format")
        signup = await self._signup(signup_id)
        e164 = signup.phone_number
        asked = await self._limit_verify_number(e164)
        typed = code_hmac(self._secret_key, signup_id, code)
        if signup.status == SignupState.verified:
            await self._hold_verify_client(client_label, asked)
            return await self._verified_again(signup, typed)
        if signup.status != SignupState.pending:
            raise _closed(signup.status)
        place = await self._hold_wrong_code_place(e164)
        judged = Held()
        await self._hold_verify_client(client_label, judged, place, asked)
        try:
            result = await gateway.update_within(
                self._temporal,
                SIGNUP_VERIFY,
                _workflow_id(signup),
                VerifyRequest(signup_id=signup_id, code_hmac=typed),
                settings.verify_timeout_seconds,
            )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # The workflow may have judged the code (and counted a wrong one): its place stays taken.
            # The account is being provisioned (the CMMS may be slow): the same code again picks it up.
            raise ServiceUnavailable(
                "the account is still being provisioned; repeat the call with the same code"
            ) from None
        except (WorkflowUpdateFailedError, RPCError) as err:
            await self.budgets.give_back(place)  # not judged: no guess, and no verify of the caller's
            await self.budgets.give_back(judged)
            closed = await self._after_refusal(signup_id, err)
            if closed.status == SignupState.verified:
                return await self._verified_again(closed, typed)
            raise _closed(closed.status) from None
        if not result.verified or result.account_id is None:
            raise WrongCode(result.attempts_left)
        await self.budgets.give_back(place)
        await self.budgets.verified(e164)
        return result.account_id, await self._credentials(signup_id)

    async def confirm(self, client_label: str, signup_id: str, password: str) -> str:
        """The CMMS verified the number and issued the app's password: the account (ID = the number's
        digits) is created with it, or the number's OTT account takes it, and reaches the CMMS; returns
        the account id."""
        settings = self._settings
        if settings.verification != Verification.cmms:
            raise Conflict("billing verifies the code in this deployment: use verify", title="Billing verifies")
        signup = await self._signup(signup_id)
        asked = await self._limit_verify_number(signup.phone_number)
        issued = password_hmac(self._secret_key, signup_id, password)
        if signup.status == SignupState.verified:
            await self._hold_verify_client(client_label, asked)
            return _confirmed_again(signup, issued)
        if signup.status != SignupState.pending:
            raise _closed(signup.status)
        judged = Held()
        await self._hold_verify_client(client_label, judged, asked)
        try:
            await self._hold_password(signup_id, issued, password)
        except Conflict:
            await self.budgets.give_back(judged)
            raise
        try:
            result = await gateway.update_within(
                self._temporal,
                SIGNUP_CONFIRM,
                _workflow_id(signup),
                ConfirmRequest(signup_id=signup_id, password_hmac=issued),
                settings.verify_timeout_seconds,
            )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise ServiceUnavailable(
                "the account is still being provisioned; repeat the call with the same password"
            ) from None
        except (WorkflowUpdateFailedError, RPCError) as err:
            await self.budgets.give_back(judged)
            closed = await self._after_refusal(signup_id, err)
            if closed.status == SignupState.verified:
                return _confirmed_again(closed, issued)
            raise _closed(closed.status) from None
        if result.account_id is None:
            raise Upstream("the account could not be provisioned")
        await self.budgets.verified(signup.phone_number)
        return result.account_id

    async def get(self, signup_id: str) -> tuple[Signup, Sequence[SmsMessage]]:
        """The signup, and its code SMS (oldest first) as their delivery reports left them."""
        async with snapshot(self._sessions) as session:
            return await _get_signup(session, signup_id), await sent_sms(session, signup_id)

    # --- helpers ---

    def _start_input(self, client_label: str, e164: str) -> OttSignupInput:
        """How a new signup of the number starts (a pending one is continued instead)."""
        settings = self._settings
        return OttSignupInput(
            signup_id=f"su-{secrets.token_urlsafe(16)}",
            phone_number=e164,
            policy=SignupPolicy(
                code_ttl_seconds=settings.code_ttl_seconds,
                max_attempts=settings.max_attempts,
                max_sends=settings.max_sends,
                resend_cooldown_seconds=settings.resend_cooldown_seconds,
            ),
            client_id=client_label,
            verification=Verification(settings.verification),
        )

    async def _hold_send(self, client_label: str, e164: str) -> Held:
        """The number's limit, then the SMS budgets, then the caller's: a request refused by one gives back
        what it held in the others (so one number or range hammered spends none of the caller's budget).
        Returns the places the send holds in the budgets and the caller's count, given back if no code
        goes out."""
        settings = self._settings
        asked = Held()
        verdict = await self.limiter.hit(f"signup:number:{e164}", settings.number_limit, settings.number_window_seconds)
        if not verdict.allowed:
            raise refusal("number", "too many signup requests for this number; try again later", verdict.retry_after)
        asked.add(f"signup:number:{e164}", verdict)
        spent = Held()
        try:
            await self.budgets.hold_send(e164, spent)
        except TooMany:
            await self.budgets.give_back(asked)
            raise
        key = f"signup:client:{client_label}"
        verdict = await self.limiter.hit(key, settings.client_limit, settings.client_window_seconds)
        if not verdict.allowed:
            await self.budgets.give_back(spent)
            await self.budgets.give_back(asked)
            raise refusal("client", "too many signup requests; try again later", verdict.retry_after)
        spent.add(key, verdict)
        return spent

    async def _sent(self, spent: Held, view: SignupView) -> None:
        """A signup request answered: the budgets keep its places only if a code went out (the CMMS texts
        its own for each request it relays, when it verifies)."""
        if not view.sent and self._settings.verification == Verification.billing:
            await self.budgets.give_back(spent)

    async def _nothing_sent(self, spent: Held, err: Exception) -> None:
        """The workflow refused the send: no code went out, unless the SMS gateway may have taken it."""
        cause = err.cause if isinstance(err, WorkflowUpdateFailedError) else None
        if isinstance(cause, ApplicationError) and cause.type != SMS_UNAVAILABLE:
            await self.budgets.give_back(spent)

    async def _limit_verify_number(self, e164: str) -> Held:
        """Verify (and confirm) calls per number: refused past it, before anything else is counted."""
        settings = self._settings
        key = f"verify:number:{e164}"
        verdict = await self.limiter.hit(key, settings.verify_number_limit, settings.verify_number_window_seconds)
        if not verdict.allowed:
            raise refusal(
                "verify_number", "too many verification requests for this number; try again later", verdict.retry_after
            )
        asked = Held()
        asked.add(key, verdict)
        return asked

    async def _hold_verify_client(self, client_label: str, held: Held, *others: Held) -> None:
        """A verify (or confirm) of the caller's, counted once every narrower check passed; refused past
        the caller's limit, giving back what this request held (`held` and the `others`)."""
        settings = self._settings
        key = f"verify:client:{client_label}"
        verdict = await self.limiter.hit(key, settings.verify_client_limit, settings.verify_client_window_seconds)
        if not verdict.allowed:
            for other in (held, *others):
                await self.budgets.give_back(other)
            raise refusal("verify_client", "too many verification requests; try again later", verdict.retry_after)
        held.add(key, verdict)

    async def _hold_wrong_code_place(self, e164: str) -> Held:
        """A place in the number's count of wrong codes (and in the hour's over all numbers), held while the
        workflow judges this one; fewer places per number while guesses across numbers pass their budget."""
        settings = self._settings
        allowance = await self.budgets.wrong_code_allowance()
        key = f"wrong-code:{e164}"
        verdict = await self.limiter.hit(key, allowance, settings.wrong_code_window_seconds)
        if not verdict.allowed:
            raise refusal("wrong_codes", "too many wrong codes for this number; try again later", verdict.retry_after)
        place = Held()
        place.add(key, verdict)
        await self.budgets.hold_wrong_code(place)
        return place

    def _billing_verifies(self) -> None:
        if self._settings.verification == Verification.cmms:
            raise Conflict(
                "the CMMS sends and verifies the codes in this deployment; it confirms the number with confirm",
                title="The CMMS verifies",
            )

    async def _verified_again(self, signup: Signup, typed: str) -> tuple[str, Credentials]:
        """A verify repeated after its answer was lost: the same right code, within its lifetime, answers
        the same credentials; anything else learns only that the signup is verified."""
        repeat = signup.secret_hmac is not None and same_hmac(signup.secret_hmac, typed)
        if not repeat or utcnow() >= signup.expires_at or signup.account_id is None:
            raise Conflict("the signup is already verified")
        return signup.account_id, await self._credentials(signup.signup_id)

    async def _hold_password(self, signup_id: str, issued: str, password: str) -> None:
        """Keep the CMMS's password on the signup's row until the account takes it (never in a workflow):
        the first password confirmed wins; another one for the signup is refused."""
        async with transaction(self._sessions) as session:
            signup = await session.get_one(Signup, signup_id, with_for_update=FOR_CHANGE)
            if signup.secret_hmac is None:
                signup.secret_hmac = issued
                signup.requested_password = password
                session.add(signup)
            elif not same_hmac(signup.secret_hmac, issued):
                raise Conflict("the signup is being confirmed with another password")

    async def _signup(self, signup_id: str) -> Signup:
        # A read of its own, ended before anything else: on SQLite an open transaction would hold the
        # process's one connection (the limiter needs it) while the workflow's activities wait.
        async with snapshot(self._sessions) as session:
            return await _get_signup(session, signup_id)

    async def _after_refusal(self, signup_id: str, err: Exception) -> Signup:
        """An update the workflow refused, or a workflow already gone: the signup as it now stands, once it
        has ended (the caller answers for its end state); the refusal to answer otherwise."""
        if isinstance(err, WorkflowUpdateFailedError):
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == SIGNUP_CLOSED):
                raise _update_refusal(err)
        elif isinstance(err, RPCError) and err.status != RPCStatusCode.NOT_FOUND:
            raise err  # Temporal unavailable: the API's 503 handler answers
        signup = await self._signup(signup_id)
        if signup.status == SignupState.pending:
            raise Conflict("the signup is busy; repeat the request in a moment")
        return signup

    async def _credentials(self, signup_id: str) -> Credentials:
        """Read from billing here, so the password never passes through the workflow; only the password
        this signup set: once a later signup of the number has renewed it, this one answers nothing."""
        async with snapshot(self._sessions) as session:
            signup = await session.get_one(Signup, signup_id)
            account = await session.get_one(Account, signup.account_id)
            if signup.account_revision is not None and account.revision != signup.account_revision:
                raise Conflict("the number's credentials have been renewed since; start a new signup")
            customer = await session.get_one(Customer, account.customer_id)
            reseller = await session.get(Reseller, customer.reseller_id) if customer.reseller_id else None
        domain = effective_profile(customer, reseller, self._provisioning).domain
        return Credentials(account_id=account.account_id, password=account.sip_password, domain=domain)


class WrongCode(Invalid):
    """The code typed is not the signup's; the caller learns how many attempts are left."""

    def __init__(self, attempts_left: int) -> None:
        detail = "the code is wrong" + ("" if attempts_left else "; no attempts are left")
        super().__init__(detail, title="Wrong code", attempts_left=attempts_left)


async def _get_signup(session: AsyncSession, signup_id: str) -> Signup:
    signup = await session.get(Signup, signup_id) if len(signup_id) <= 64 else None
    if signup is None:
        raise NotFound(f"signup {signup_id!r} does not exist")
    return signup


def _confirmed_again(signup: Signup, issued: str) -> str:
    if signup.secret_hmac is None or not same_hmac(signup.secret_hmac, issued) or signup.account_id is None:
        raise Conflict("the signup is already verified with another password")
    return signup.account_id


def _closed(status: SignupState) -> ServiceError:
    if status == SignupState.expired:
        return Gone("the signup has expired; start a new one")
    if status == SignupState.failed:
        return TooMany("the signup failed after too many attempts; start a new one")
    return Conflict("the signup is already verified")


def _update_refusal(err: WorkflowUpdateFailedError) -> ServiceError:
    """The workflow's refusal, by its ApplicationError type."""
    cause = err.cause
    kind = cause.type if isinstance(cause, ApplicationError) else None
    message = cause.message if isinstance(cause, ApplicationError) else "the request could not be completed"
    if kind == RESEND_COOLDOWN and isinstance(cause, ApplicationError):
        return TooMany(message, retry_after=int(cause.details[0]) if cause.details else 30)
    if kind in (TOO_MANY_ATTEMPTS, SEND_LIMIT):
        return TooMany(message)
    if kind == SIGNUP_EXPIRED:
        return Gone(message)
    if kind == SIGNUP_CLOSED:
        return Conflict(message)
    if kind == ACCOUNT_NOT_CLAIMABLE:
        return Conflict(message, title="Account not claimable")
    if kind == WRONG_VERIFICATION:
        return Conflict(message, title="Another verification mode")
    if kind == SMS_UNAVAILABLE:
        return ServiceUnavailable("the SMS gateway is unavailable; repeat the request shortly")
    if kind == SMS_REJECTED:
        return Upstream(message)  # the gateway's own reason
    if kind == PROVISIONING_FAILED:
        return Upstream(message)
    return ServiceError("the signup could not be completed")


def _invalid(field: str, message: str, kind: str) -> Invalid:
    return Invalid(message, [{"field": field, "message": message, "type": kind}])


def _workflow_id(signup: Signup) -> str:
    """The number's signup workflow (one per number: a new signup of it continues a pending one)."""
    return signup_workflow_id(signup.phone_number)
