"""The codes this CMMS texts when it verifies signups itself (SIGNUP_VERIFICATION=cmms).

The same policy as billing's: 6 digits from `secrets`, 10 minutes, 5 wrong tries, 5 sends 30 s apart.
Only a keyed hash of each code is kept (the key is the process's own), in memory: a simulator
restarted mid-signup forgets its codes, and the app asks for a new one.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

CODE_DIGITS = 6
CODE_TTL_SECONDS = 600
MAX_ATTEMPTS = 5
MAX_SENDS = 5
RESEND_COOLDOWN_SECONDS = 30


class Check(StrEnum):
    right = "right"
    wrong = "wrong"
    unknown = "unknown"  # no code was sent for this signup
    expired = "expired"
    locked = "locked"  # too many wrong tries


@dataclass
class _Pending:
    phone_number: str
    code_hash: bytes
    expires_at: float
    sent_at: float
    sends: int = 1
    attempts: int = 0
    password: str | None = None  # issued on the right code; a retried confirmation sends the same


class SignupCodes:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._pending: dict[str, _Pending] = {}

    def _hash(self, signup_id: str, code: str) -> bytes:
        return hmac.new(self._key, f"{signup_id}:{code}".encode(), hashlib.sha256).digest()

    def wait_before_send(self, signup_id: str) -> int | None:
        """Seconds before another code may go out for the signup (None: now), or -1 past the send limit."""
        pending = self._pending.get(signup_id)
        if pending is None:
            return None
        if pending.sends >= MAX_SENDS:
            return -1
        wait = pending.sent_at + RESEND_COOLDOWN_SECONDS - time.time()
        return int(wait) + 1 if wait > 0 else None

    def issue(self, signup_id: str, phone_number: str) -> str:
        """A new code for the signup (the previous one stops working)."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        now = time.time()
        previous = self._pending.get(signup_id)
        self._pending[signup_id] = _Pending(
            phone_number=phone_number,
            code_hash=self._hash(signup_id, code),
            expires_at=now + CODE_TTL_SECONDS,
            sent_at=now,
            sends=previous.sends + 1 if previous else 1,
            attempts=previous.attempts if previous else 0,
        )
        return code

    def password(self, signup_id: str) -> str:
        """The password issued for the signup's app: made on first use, the same on every retry."""
        pending = self._pending[signup_id]
        if pending.password is None:
            pending.password = secrets.token_urlsafe(18)
        return pending.password

    def phone_number(self, signup_id: str) -> str | None:
        pending = self._pending.get(signup_id)
        return pending.phone_number if pending else None

    def check(self, signup_id: str, code: str) -> tuple[Check, int]:
        """The typed code against the signup's current one, and the tries left."""
        pending = self._pending.get(signup_id)
        if pending is None:
            return Check.unknown, 0
        if pending.attempts >= MAX_ATTEMPTS:
            return Check.locked, 0
        if time.time() >= pending.expires_at:
            return Check.expired, 0
        pending.attempts += 1
        if hmac.compare_digest(pending.code_hash, self._hash(signup_id, code)):
            return Check.right, MAX_ATTEMPTS - pending.attempts
        return Check.wrong, MAX_ATTEMPTS - pending.attempts
