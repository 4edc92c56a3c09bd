"""Inputs and results of the OTT signup workflow, its updates and activities.

Ids, a phone number and code *hashes* only: never a code, never a password.
"""

import hmac
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

# ApplicationError types the signup workflow answers with; the API maps each to an HTTP status.
SIGNUP_CLOSED = "SignupClosed"  # verified, expired or failed already, or another signup of the number
SIGNUP_EXPIRED = "SignupExpired"
TOO_MANY_ATTEMPTS = "TooManyAttempts"
SEND_LIMIT = "SendLimitReached"
RESEND_COOLDOWN = "ResendCooldown"  # details: [seconds to wait]
SMS_REJECTED = "SmsRejected"
SMS_UNAVAILABLE = "SmsUnavailable"
PROVISIONING_FAILED = "ProvisioningFailed"
# The number's billing account is not one a signup created (an MVNO account, say): never handed out.
ACCOUNT_NOT_CLAIMABLE = "AccountNotClaimable"
# A call of the other verification mode: the CMMS verifies (`confirm`), or billing does (`verify`).
WRONG_VERIFICATION = "WrongVerification"


def same_hmac(expected: str, given: str) -> bool:
    """Constant-time comparison of two code (or password) hashes."""
    return hmac.compare_digest(expected.encode(), given.encode())


class Verification(StrEnum):
    """Who generates, texts and checks the code (setting SIGNUP_VERIFICATION)."""

    billing = "billing"
    cmms = "cmms"


def signup_origin(signup_id: str) -> str:
    """What an account created by the signup records in `created_by`."""
    return f"signup:{signup_id}"


def made_by_a_signup(created_by: str) -> bool:
    """Whether an account's `created_by` names a signup: only such an account may a later signup claim."""
    return created_by.startswith(signup_origin(""))


def signup_workflow_id(e164: str) -> str:
    """One live signup per number: the business key is the number's digits (`signup-4915112345678`)."""
    return f"signup-{e164.lstrip('+')}"


class SignupState(StrEnum):
    pending = "pending"
    verified = "verified"
    expired = "expired"
    failed = "failed"


class SignupPolicy(BaseModel):
    """The code policy one signup runs under (NIST SP 800-63B, OWASP), fixed when it starts."""

    code_ttl_seconds: int = 600
    max_attempts: int = 5
    max_sends: int = 5
    resend_cooldown_seconds: int = 30


class OttSignupInput(BaseModel):
    signup_id: str
    phone_number: str  # E.164 with '+'
    policy: SignupPolicy
    client_id: str | None = None
    verification: Verification = Verification.billing


class SendCodeRequest(BaseModel):
    """The `send_code` update: a signup request for the number (no id), or a resend of signup `signup_id`."""

    signup_id: str | None = None


class SignupView(BaseModel):
    """What a signup request or resend is answered with."""

    signup_id: str
    expires_at: datetime
    sent: bool  # a new code went out with this request


class VerifyRequest(BaseModel):
    """The `verify` update: the HMAC of the typed code (`billing.otp.code_hmac`), never the code."""

    signup_id: str
    code_hmac: str


class ConfirmRequest(BaseModel):
    """The `confirm` update (the CMMS verified the number): the HMAC of the password it issued.

    The password itself waits on the signup's row, where the account takes it."""

    signup_id: str
    password_hmac: str


class VerifyResult(BaseModel):
    verified: bool
    account_id: str | None = None
    attempts_left: int


class SendCodeInput(BaseModel):
    signup_id: str
    phone_number: str
    seq: int = 1  # the signup's send number: a retried send of it texts nothing
    max_sends: int = 5  # the most code SMS the signup may ever send


class SendCodeResult(BaseModel):
    code_hmac: str


class RecordSignupInput(BaseModel):
    """Write the signup's row as the workflow sees it (created on first write)."""

    signup_id: str
    phone_number: str
    status: SignupState
    expires_at: datetime
    client_id: str | None = None
    account_id: str | None = None


class SignupAccountInput(BaseModel):
    signup_id: str
    phone_number: str
    secret_hmac: str | None = None  # what verified the signup (kept to tell a repeated call)
    password_from_signup: bool = False  # the CMMS issued the password: take it from the signup's row


class SignupAccount(BaseModel):
    account_id: str
    created: bool  # True: a new account (or a terminated one's new life) that the CMMS has yet to hold
    # The number's live account was given a new password: its workflow pushes it to the CMMS.
    password_changed: bool = False


class OttSignupResult(BaseModel):
    signup_id: str
    status: SignupState
    account_id: str | None = None
