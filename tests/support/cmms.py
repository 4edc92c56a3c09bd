"""What tests of the CMMS client share: an account to push, whose password must never be shown, and the
check that an error shows no secret."""

import traceback

from contracts.cmms import CmmsAccount

PASSWORD = "pw-Zq8-never-shown"


def account(imei: str | None, **changes: object) -> CmmsAccount:
    fields: dict[str, object] = {
        "password": PASSWORD,
        "imei": imei,
        "profile": "Residential",
        "domain": "acme.example",
    }
    return CmmsAccount.model_validate(fields | changes)


def assert_no_secrets(exc: BaseException, *secrets: str) -> None:
    """Neither the message, the repr nor the formatted traceback shows a secret."""
    shown = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    for secret in secrets:
        assert secret not in shown
