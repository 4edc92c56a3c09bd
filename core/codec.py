"""The payload codec: every Temporal payload (inputs, results, signals, failures' details) is stored
encrypted, so the server's history, and the UI without the codec server, show only ciphertext."""

from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from core.crypto import KeyRing

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload, with the key id in the metadata.

    The metadata names the key, so after a rotation (a new key first in `PAYLOAD_KEYS`, the old one
    kept after it) old histories still decode; a payload under a key no longer listed fails loudly.
    """

    def __init__(self, keys: KeyRing) -> None:
        super().__init__()
        self._keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            kid, sealed = self._keys.encrypt(payload.SerializeToString())
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            # Payloads written before encryption (or by another client) pass through unchanged.
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            decoded.append(Payload.FromString(self._keys.decrypt(kid, payload.data)))
        return decoded
