"""Secrets encrypted at rest: a column type that stores AES-GCM ciphertext and reads back plaintext.

Code keeps reading and writing `account.sip_password` as a plain string; the database holds
`v1:<kid>:<base64url(nonce + ciphertext + tag)>`. The column's name is bound into the ciphertext
(associated data), so a value copied into another encrypted column does not decrypt.
The keys come from `DATABASE_ENCRYPTION_KEYS` (see `core.crypto` for the format and rotation).
"""

import base64
from functools import lru_cache

from sqlalchemy import Dialect, String, TypeDecorator

from core.crypto import KeyRing
from core.settings import get_settings

PREFIX = "v1"


@lru_cache(maxsize=4)
def _ring(spec: str) -> KeyRing:
    return KeyRing.parse(spec)


def database_keys() -> KeyRing:
    """The process's key ring, from its settings (read once; tests' explicit settings use the same
    development default unless they set the variable, which the whole process then shares)."""
    return _ring(get_settings().database_encryption_keys.get_secret_value())


def ciphertext_length(plaintext_length: int, kid_length: int = 32) -> int:
    """The longest stored text for a plaintext of this many bytes: sizes the column."""
    sealed = 12 + plaintext_length + 16
    return len(PREFIX) + 1 + kid_length + 1 + 4 * ((sealed + 2) // 3)


class EncryptedString(TypeDecorator[str]):
    """A string stored encrypted; `purpose` (e.g. "account.sip_password") is the associated data."""

    impl = String
    cache_ok = True

    def __init__(self, purpose: str, max_plaintext: int) -> None:
        super().__init__(length=ciphertext_length(max_plaintext))
        self.purpose = purpose
        self.max_plaintext = max_plaintext

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        kid, sealed = database_keys().encrypt(value.encode(), self.purpose.encode())
        return f"{PREFIX}:{kid}:{base64.urlsafe_b64encode(sealed).decode()}"

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        prefix, kid, text = value.split(":", 2)
        if prefix != PREFIX:
            raise ValueError(f"unknown encrypted-column format {prefix!r}")
        return database_keys().decrypt(kid, base64.urlsafe_b64decode(text), self.purpose.encode()).decode()
