"""Secrets encrypted at rest: a column type that stores AES-GCM ciphertext and reads back plaintext.

Code keeps reading and writing `account.sip_password` as a plain string; the database holds
`v1:<kid>:<base64url(nonce + ciphertext + tag)>`. The column's name is bound into the ciphertext
(associated data), so a value copied into another encrypted column does not decrypt.
The keys come from `DATABASE_ENCRYPTION_KEYS` (see `core.crypto` for the format and rotation): each
process's entry point hands them over once at start-up (`use_key_ring`), before any row is read or written.
"""

import base64

from sqlalchemy import Dialect, String, TypeDecorator

from core.crypto import KeyRing

PREFIX = "v1"

# The process's key ring: a column type is made at import time, long before the settings are read.
_keys: KeyRing | None = None


def use_key_ring(keys: KeyRing) -> None:
    """Encrypt and decrypt with `keys` from now on, in the whole process (its entry point calls this
    once, beside the engine's set-up; tests, with the key ring of their settings)."""
    global _keys
    _keys = keys


def database_keys() -> KeyRing:
    """The key ring the entry point handed over."""
    if _keys is None:
        raise RuntimeError("no key ring for the encrypted columns: the entry point calls use_key_ring first")
    return _keys


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
