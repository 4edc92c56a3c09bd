"""The development secrets, and what production refuses: any of them, recognised by value.

The development values are fixed so that `make run` and the tests work out of the box. A copy that is
spelt differently is still the same secret: a key ring's key under another key id, without its
`=` padding or with spaces in it decodes to the same 32 bytes, and an API key list holding a
development key beside real ones still lets anyone who has read the README in. So key rings are
compared by their decoded keys, API key lists key by key, and tokens after trimming.
"""

from collections.abc import Mapping

from core.api_keys import api_key_entries
from core.crypto import key_material

DEV_SECRET_KEY = "dev-secret-key-change-me"
DEV_PAYLOAD_KEYS = "dev:ZGV2LXBheWxvYWQta2V5LW5ldmVyLWluLXByb2QhISE="
DEV_DATABASE_ENCRYPTION_KEYS = "dev:ZGV2LWRhdGFiYXNlLWtleS1uZXZlci1pbi1wcm9kISE="
DEV_CODEC_SERVER_TOKEN = "dev-codec-token"
DEV_API_KEYS = "dev-website-key:website,dev-cmms-key:cmms,dev-admin-key:admin"
DEV_CMMS_TOKEN = "dev-cmms-token"
DEV_SMS_USERNAME = "kannel"
DEV_SMS_PASSWORD = "kannel-dev"
DEV_PORTABILLING_PASSWORD = "portabilling-dev"
DEV_ESPF_PASSWORD = "espf-dev"

# HMAC keys shorter than the hash's 32-byte output weaken it; 32 random bytes are easy to make.
MIN_SECRET_KEY_BYTES = 32
# Bearer tokens, API keys and passwords that open the service to whoever presents them: as long as a
# SECRET_KEY, so that none of them can be guessed or searched for (an empty one opens it to anyone).
MIN_TOKEN_BYTES = 32

_DEV_RING_KEYS = frozenset(
    key for ring in (DEV_PAYLOAD_KEYS, DEV_DATABASE_ENCRYPTION_KEYS) for _, key in key_material(ring)
)
_DEV_API_KEYS = frozenset(entry.key for entry in api_key_entries(DEV_API_KEYS))
# Every development token or password: none of them may stand for any secret in production.
_DEV_WORDS = frozenset(
    {
        DEV_SECRET_KEY,
        DEV_CODEC_SERVER_TOKEN,
        DEV_CMMS_TOKEN,
        DEV_SMS_PASSWORD,
        DEV_PORTABILLING_PASSWORD,
        DEV_ESPF_PASSWORD,
        *_DEV_API_KEYS,
    }
)


def api_keys_of(spec: str) -> list[str]:
    """The keys of an `API_KEYS` list (`[name@]key:role[+role],…`), trimmed, names and roles dropped: a
    development key under a name is still a development key. A malformed list gives none here: the API,
    which reads it, refuses to start with it, naming the entry."""
    try:
        return [entry.key for entry in api_key_entries(spec)]
    except ValueError:
        return []


def _ring_is_dev(spec: str) -> bool:
    try:
        return any(key in _DEV_RING_KEYS for _, key in key_material(spec))
    except ValueError:
        return False  # a malformed ring is refused by its own check, with its own message


def production_problems(
    *,
    rings: Mapping[str, str],
    tokens: Mapping[str, str],
    api_keys: str,
    secret_key: str,
    explicit: Mapping[str, bool],
    long_tokens: frozenset[str] = frozenset(),
) -> list[str]:
    """What production must refuse, one short phrase per setting (the setting named, no value shown).

    `rings` and `tokens` map setting names to their values; `explicit` says, for each setting that
    production needs set on purpose (no fallback to the simulator), whether it was given; the tokens
    named in `long_tokens` must also be MIN_TOKEN_BYTES long, as each API key must."""
    problems = [f"{name} must be set explicitly in production" for name, given in explicit.items() if not given]
    if len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
        problems.append(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes in production")
    elif secret_key.strip() in _DEV_WORDS:
        problems.append("SECRET_KEY is a development value")
    keys = api_keys_of(api_keys)
    if any(key in _DEV_WORDS for key in keys):
        problems.append("API_KEYS holds a development key")
    elif not keys or any(len(key.encode()) < MIN_TOKEN_BYTES for key in keys):
        problems.append(f"API_KEYS: each key must be at least {MIN_TOKEN_BYTES} bytes in production")
    problems += [f"{name} holds a development key" for name, ring in rings.items() if _ring_is_dev(ring)]
    for name, token in tokens.items():
        if token.strip() in _DEV_WORDS:
            problems.append(f"{name} is a development value")
        elif name in long_tokens and len(token.strip().encode()) < MIN_TOKEN_BYTES:
            problems.append(f"{name} must be at least {MIN_TOKEN_BYTES} bytes in production")
    return problems
