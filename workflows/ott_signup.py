"""OTT self-signup. A code goes out by SMS; the right code creates the number's account.

One workflow per phone number while the signup is pending (id `signup-<digits>`), so a second
signup for the number continues this one. Requests arrive as updates, answered synchronously:
`send_code` (a signup request or a resend) and `verify` (the HMAC of the typed code). Validators
turn away what the policy forbids before anything is recorded. The code itself never enters the
history: an activity generates and sends it and returns its HMAC; the API hashes the typed code.

When the CMMS verifies (`Verification.cmms`), no code reaches billing: `send_code` only records the
signup (and keeps it open for another code lifetime), and `confirm` carries the HMAC of the password
the CMMS issued, which waits on the signup's row until the account takes it. States, search
attributes and the signup's row are the same in both modes.
"""

import asyncio
import math
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.provisioning import ProvisioningActivities
    from activities.signups import SignupActivities
    from contracts.provisioning import ProvisionAccountInput
    from contracts.search_attributes import ProvisioningState
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
        OttSignupResult,
        RecordSignupInput,
        SendCodeInput,
        SendCodeRequest,
        SignupAccountInput,
        SignupState,
        SignupView,
        Verification,
        VerifyRequest,
        VerifyResult,
        same_hmac,
    )
    from contracts.workflows import OTT_SIGNUP, SIGNUP_CONFIRM, SIGNUP_SEND_CODE, SIGNUP_STATE, SIGNUP_VERIFY
    from workflows import handlers
    from workflows.policies import DB_STEP, StepOptions, cmms_step
    from workflows.visibility import show

# The user waits for the SMS: a few quick tries (about 6 s, long enough for a restarting Kannel to
# come back), then the caller hears the gateway is unavailable.
SMS_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        maximum_interval=timedelta(seconds=2),
        maximum_attempts=5,
        non_retryable_error_types=[SMS_REJECTED],
    ),
}


# A push through the account's workflow waits for the CMMS: retried without end, as every CMMS step.
PUSH_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=5)),
}

# A failed signup's row says so before the update that failed it answers, so that whoever heard "no"
# reads `failed` at once (runs started before this wrote it only as they ended).
FAILURE_RECORDED_BEFORE_ANSWER = "failure-recorded-before-answer"


@workflow.defn(name=OTT_SIGNUP.name)
class OttSignupWorkflow:
    @workflow.init
    def __init__(self, start: OttSignupInput) -> None:
        self._signup_id = start.signup_id
        self._phone = start.phone_number
        self._client_id = start.client_id
        self._policy = start.policy
        self._status = SignupState.pending
        self._expires_at = workflow.now() + timedelta(seconds=start.policy.code_ttl_seconds)
        self._code_hmac: str | None = None
        self._sends = 0
        self._last_sent_at = workflow.now()
        self._attempts = 0
        self._sending = False
        self._verifying = False
        self._account_id: str | None = None
        self._verification = start.verification
        self._failure_recorded = False

    @workflow.run
    async def run(self, start: OttSignupInput) -> OttSignupResult:
        while self._status == SignupState.pending:
            if await self._current_code_expired():
                # A verification under way when the code expires is let finish: the code was right in time.
                await workflow.wait_condition(lambda: not self._verifying and not self._sending)
                if self._status == SignupState.pending and workflow.now() >= self._expires_at:
                    self._status = SignupState.expired
        await workflow.wait_condition(lambda: not self._verifying and not self._sending)
        if self._status != SignupState.verified and not self._failure_recorded:  # else the update recorded it
            await self._record()
        show(ProvisioningState(self._status.value), account_id=self._account_id)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return OttSignupResult(signup_id=self._signup_id, status=self._status, account_id=self._account_id)

    async def _current_code_expired(self) -> bool:
        """Wait for the signup to end or a new code to go out (False), or for the current code to expire (True)."""
        deadline = self._expires_at
        try:
            await workflow.wait_condition(
                lambda: self._status != SignupState.pending or self._expires_at != deadline,
                timeout=max(deadline - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            return True
        return False

    @workflow.query(name=SIGNUP_STATE.name)
    def state(self) -> OttSignupResult:
        """Where the signup stands (for the Temporal UI and tests); never the code or its hash."""
        return OttSignupResult(signup_id=self._signup_id, status=self._status, account_id=self._account_id)

    # --- send_code: a signup request for the number, or a resend ---

    @handlers.update(SIGNUP_SEND_CODE)
    async def send_code(self, request: SendCodeRequest) -> SignupView:
        """Send a new code (the old one stops working) and answer the signup; a repeated signup
        request inside the cooldown or past the send limit answers the pending signup unchanged."""
        await workflow.wait_condition(lambda: not self._sending)
        self._check_open(request.signup_id)
        refusal = self._send_refusal() if self._verification == Verification.billing else None
        if refusal is not None:
            if request.signup_id is not None:  # an explicit resend is told why not
                raise refusal
            return self._view(sent=False)
        if self._verification == Verification.cmms:
            return await self._cmms_reported()
        self._sending = True
        try:
            # The code lives its full lifetime from the request; the SMS goes out meanwhile.
            expires_at = workflow.now() + timedelta(seconds=self._policy.code_ttl_seconds)
            send = workflow.execute_activity_method(
                SignupActivities.send_signup_code,
                SendCodeInput(
                    signup_id=self._signup_id,
                    phone_number=self._phone,
                    seq=self._sends + 1,
                    max_sends=self._policy.max_sends,
                ),
                **SMS_STEP,
            )
            if self._sends == 0:
                # The first code: the row is written while the SMS goes out (one step less to wait for).
                sent, _ = await asyncio.gather(send, self._record(expires_at=expires_at))
            else:
                sent = await send
                await self._record(expires_at=expires_at)
            self._code_hmac = sent.code_hmac
            self._sends += 1
            self._last_sent_at = workflow.now()
            self._expires_at = expires_at
        except ActivityError as err:
            cause = err.cause
            kind = cause.type if isinstance(cause, ApplicationError) and cause.type else SMS_UNAVAILABLE
            raise ApplicationError(_reason(err), type=kind, non_retryable=True) from None
        finally:
            self._sending = False
        return self._view(sent=True)

    async def _cmms_reported(self) -> SignupView:
        """The CMMS reported the number (again): it texts its own code, so the signup stays open for
        another code lifetime from now."""
        self._sending = True
        try:
            expires_at = workflow.now() + timedelta(seconds=self._policy.code_ttl_seconds)
            await self._record(expires_at=expires_at)
            self._sends += 1
            self._expires_at = expires_at
        finally:
            self._sending = False
        return self._view(sent=False)

    @send_code.validator
    def _validate_send_code(self, request: SendCodeRequest) -> None:
        self._check_open(request.signup_id)
        if self._verification == Verification.cmms:
            if request.signup_id is not None:  # a resend: the CMMS sends its own codes
                raise ApplicationError("the CMMS sends the codes", type=WRONG_VERIFICATION, non_retryable=True)
            return
        if request.signup_id is not None and not self._sending:
            refusal = self._send_refusal()
            if refusal is not None:
                raise refusal

    # --- verify: the HMAC of the typed code ---

    @handlers.update(SIGNUP_VERIFY)
    async def verify(self, request: VerifyRequest) -> VerifyResult:
        """Check the code; on the right one create (or find) the number's account and provision it."""
        if self._verification == Verification.cmms:
            raise ApplicationError("the CMMS verifies the code", type=WRONG_VERIFICATION, non_retryable=True)
        correct = self._code_hmac is not None and same_hmac(self._code_hmac, request.code_hmac)
        if self._verifying:
            # A repeat of the right code (the caller retried) waits for the same outcome.
            if not correct:
                raise ApplicationError("the signup is being verified", type=SIGNUP_CLOSED, non_retryable=True)
            await workflow.wait_condition(lambda: not self._verifying)
            if self._account_id is None:
                raise ApplicationError("the account could not be provisioned", type=PROVISIONING_FAILED)
            return self._verified()
        self._check_verifiable(request.signup_id)
        self._attempts += 1
        if not correct:
            left = self._policy.max_attempts - self._attempts
            if left <= 0:
                await self._fail()
            return VerifyResult(verified=False, attempts_left=left)
        self._verifying = True
        try:
            self._account_id = await self._create_account()
            self._status = SignupState.verified
        finally:
            self._verifying = False
        return self._verified()

    @verify.validator
    def _validate_verify(self, request: VerifyRequest) -> None:
        if self._verification == Verification.cmms:
            raise ApplicationError("the CMMS verifies the code", type=WRONG_VERIFICATION, non_retryable=True)
        if not self._verifying:
            self._check_verifiable(request.signup_id)

    # --- confirm: the CMMS verified the number and issued the app's password ---

    @handlers.update(SIGNUP_CONFIRM)
    async def confirm(self, request: ConfirmRequest) -> VerifyResult:
        """Create (or renew) the number's account with the CMMS's password and provision it."""
        self._check_confirmable(request)
        if self._verifying:  # the same confirmation again: the same outcome
            await workflow.wait_condition(lambda: not self._verifying)
            if self._account_id is None:
                raise ApplicationError("the account could not be provisioned", type=PROVISIONING_FAILED)
            return self._verified()
        self._code_hmac = request.password_hmac
        self._verifying = True
        try:
            self._account_id = await self._create_account(password_from_signup=True)
            self._status = SignupState.verified
        finally:
            self._verifying = False
        return self._verified()

    @confirm.validator
    def _validate_confirm(self, request: ConfirmRequest) -> None:
        self._check_confirmable(request)

    def _check_confirmable(self, request: ConfirmRequest) -> None:
        if self._verification != Verification.cmms:
            raise ApplicationError("billing verifies the code", type=WRONG_VERIFICATION, non_retryable=True)
        if self._verifying:
            if self._code_hmac is None or not same_hmac(self._code_hmac, request.password_hmac):
                raise ApplicationError("the signup is being confirmed", type=SIGNUP_CLOSED, non_retryable=True)
            return
        self._check_open(request.signup_id)

    # --- the rules ---

    def _check_open(self, signup_id: str | None) -> None:
        """Refuse a request for a signup that is not this pending one, or whose code has expired."""
        if signup_id is not None and signup_id != self._signup_id:
            raise ApplicationError("the signup is closed", type=SIGNUP_CLOSED, non_retryable=True)
        if self._status != SignupState.pending or self._verifying:
            raise ApplicationError(f"the signup is {self._status.value}", type=SIGNUP_CLOSED, non_retryable=True)
        if self._sends > 0 and workflow.now() >= self._expires_at:
            raise ApplicationError("the code has expired", type=SIGNUP_EXPIRED, non_retryable=True)

    def _check_verifiable(self, signup_id: str) -> None:
        if self._attempts >= self._policy.max_attempts:
            raise ApplicationError("too many wrong codes", type=TOO_MANY_ATTEMPTS, non_retryable=True)
        self._check_open(signup_id)
        if self._code_hmac is None:
            raise ApplicationError("no code has been sent yet", type=SIGNUP_CLOSED, non_retryable=True)

    def _send_refusal(self) -> ApplicationError | None:
        """Why no code may go out now, or None: the send limit, or the cooldown (with the seconds to wait)."""
        if self._sends >= self._policy.max_sends:
            return ApplicationError("no more codes may be sent for this signup", type=SEND_LIMIT, non_retryable=True)
        if self._sends == 0:
            return None
        ready_at = self._last_sent_at + timedelta(seconds=self._policy.resend_cooldown_seconds)
        wait = (ready_at - workflow.now()).total_seconds()
        if wait > 0:
            return ApplicationError(
                "a code was sent moments ago", math.ceil(wait), type=RESEND_COOLDOWN, non_retryable=True
            )
        return None

    # --- steps ---

    async def _create_account(self, *, password_from_signup: bool = False) -> str:
        account_input = SignupAccountInput(
            signup_id=self._signup_id,
            phone_number=self._phone,
            secret_hmac=self._code_hmac,
            password_from_signup=password_from_signup,
        )
        show(ProvisioningState.provisioning)
        try:
            account = await workflow.execute_activity_method(
                SignupActivities.create_signup_account, account_input, **DB_STEP
            )
            if account.created:
                await workflow.execute_activity_method(
                    ProvisioningActivities.provision_account,
                    ProvisionAccountInput(account_id=account.account_id),
                    **cmms_step(),
                )
            elif account.password_changed:
                # The live account's new password: its own workflow, the one writer of its CMMS record.
                await workflow.execute_activity_method(SignupActivities.push_signup_account, account_input, **PUSH_STEP)
            await self._record(SignupState.verified, account.account_id)
        except ActivityError as err:
            await workflow.execute_activity_method(SignupActivities.discard_signup_account, account_input, **DB_STEP)
            await self._fail()
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == ACCOUNT_NOT_CLAIMABLE:
                raise ApplicationError(cause.message, type=ACCOUNT_NOT_CLAIMABLE, non_retryable=True) from None
            raise ApplicationError(
                f"the account could not be provisioned: {_reason(err)}", type=PROVISIONING_FAILED
            ) from None
        return account.account_id

    async def _fail(self) -> None:
        self._status = SignupState.failed
        if workflow.patched(FAILURE_RECORDED_BEFORE_ANSWER):
            self._failure_recorded = True  # first: the run, free to end meanwhile, must not record it again
            await self._record()

    async def _record(
        self, status: SignupState | None = None, account_id: str | None = None, *, expires_at: datetime | None = None
    ) -> None:
        await workflow.execute_activity_method(
            SignupActivities.record_signup,
            RecordSignupInput(
                signup_id=self._signup_id,
                phone_number=self._phone,
                status=status or self._status,
                expires_at=expires_at or self._expires_at,
                client_id=self._client_id,
                account_id=account_id or self._account_id,
            ),
            **DB_STEP,
        )

    def _view(self, *, sent: bool) -> SignupView:
        return SignupView(signup_id=self._signup_id, expires_at=self._expires_at, sent=sent)

    def _verified(self) -> VerifyResult:
        return VerifyResult(
            verified=True, account_id=self._account_id, attempts_left=self._policy.max_attempts - self._attempts
        )


def _reason(err: ActivityError) -> str:
    """The business reason in words: the activity's ApplicationError message."""
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)
