"""Generated identifiers and SIP passwords (from `secrets`, never from a workflow's random)."""

import secrets
import string

_ID_ALPHABET = string.ascii_lowercase + string.digits
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def new_account_id() -> str:
    return "acct-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def new_sip_password() -> str:
    """24 characters from 62: about 143 bits, safe to type nowhere since nobody types it."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(24))
