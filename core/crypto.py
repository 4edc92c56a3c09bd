"""AES-256-GCM under named keys: the newest key encrypts, every listed key decrypts (so keys rotate).

A key ring is written as a comma-separated list of `kid:key`, the key being 32 bytes in URL-safe
base64 (make one with `python -c "import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`).
Used for Temporal payloads (`core.codec`) and for secrets stored in the billing database
(`billing.encrypted`), each with its own setting.
"""

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12  # the size AES-GCM is specified for; random per message
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class UnknownKeyError(LookupError):
    """Data was encrypted under a key id that is not in the key ring (retired too early?)."""


class DecryptionError(ValueError):
    """The ciphertext does not authenticate under its key: tampered with, or the key is wrong."""


def _decode_key(kid: str, text: str) -> bytes:
    # Whitespace is dropped and padding restored, as base64 readers do: one key, however it is spelt.
    text = "".join(text.split())
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"key {kid!r} is not URL-safe base64") from err
    if len(key) != 32:
        raise ValueError(f"key {kid!r} must be 32 bytes (AES-256), not {len(key)}")
    return key


def key_material(spec: str) -> list[tuple[str, bytes]]:
    """The `(kid, key bytes)` of a key ring `kid:key,kid:key`, in order; errors name the key id, never the key."""
    keys: dict[str, bytes] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        kid, sep, text = entry.partition(":")
        if not sep or not _KID.match(kid):
            raise ValueError("each key must be written `kid:base64-key`, kid of letters, digits, `_.-`")
        if kid in keys:
            raise ValueError(f"key id {kid!r} is listed twice")
        keys[kid] = _decode_key(kid, text.strip())
    if not keys:
        raise ValueError("the key ring is empty")
    return list(keys.items())


@dataclass(frozen=True)
class KeyRing:
    """Named AES-256-GCM keys; `current_kid` is the one new data is encrypted under."""

    current_kid: str
    keys: dict[str, AESGCM]

    @classmethod
    def parse(cls, spec: str) -> "KeyRing":
        """From `kid:key,kid:key`: the first key encrypts. Errors name the key id, never the key."""
        keys = {kid: AESGCM(key) for kid, key in key_material(spec)}
        return cls(current_kid=next(iter(keys)), keys=keys)

    def encrypt(self, plaintext: bytes, associated_data: bytes | None = None) -> tuple[str, bytes]:
        """Encrypt under the current key; returns its id and `nonce + ciphertext + tag`."""
        nonce = os.urandom(NONCE_BYTES)
        return self.current_kid, nonce + self.keys[self.current_kid].encrypt(nonce, plaintext, associated_data)

    def decrypt(self, kid: str, sealed: bytes, associated_data: bytes | None = None) -> bytes:
        """Decrypt what `encrypt` returned under key `kid` (any key of the ring, current or retired)."""
        key = self.keys.get(kid)
        if key is None:
            raise UnknownKeyError(f"no key with id {kid!r} in the key ring; known: {', '.join(self.keys)}")
        try:
            return key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
        except InvalidTag as err:
            raise DecryptionError(f"data under key {kid!r} does not authenticate") from err
