"""One-time SMS codes: generated from `secrets`, kept only as a keyed hash (HMAC), compared in constant time
(contracts.signups.same_hmac, which the signup workflow uses too)."""

import hashlib
import hmac
import secrets

from pydantic import SecretStr


def new_code(digits: int) -> str:
    """A uniformly random numeric code of `digits` digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def is_well_formed(code: str, digits: int) -> bool:
    """Exactly `digits` ASCII digits."""
    return len(code) == digits and code.isascii() and code.isdigit()


def code_hmac(secret_key: SecretStr, signup_id: str, code: str) -> str:
    """The keyed hash of `code` for one signup: what the workflow keeps and compares, never the code.

    Bound to the signup id, so the same code in two signups hashes differently; without the key,
    the hash of a 6-digit code cannot be brute-forced.
    """
    key = secret_key.get_secret_value().encode()
    return hmac.new(key, f"otp:{signup_id}:{code}".encode(), hashlib.sha256).hexdigest()


def password_hmac(secret_key: SecretStr, signup_id: str, password: str) -> str:
    """The keyed hash of the password the CMMS issued for one signup: a repeated confirmation is told
    from another password by it, and the workflow carries it instead of the password."""
    key = secret_key.get_secret_value().encode()
    return hmac.new(key, f"cmms-password:{signup_id}:{password}".encode(), hashlib.sha256).hexdigest()
