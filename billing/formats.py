"""The formats billing holds an account's fields to, wherever they come from: the API's fields
(api.fields) and a bulk import's rows (services.imports) check them here."""

import re

from stdnum import luhn

# An id billing stores (an account's, an order's, a customer's, ...): what the API's `ResourceId` allows.
RESOURCE_ID = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}"
# A SIP password: 8 to 64 printable ASCII characters, no spaces (what a phone's keypad and the CMMS take).
SIP_PASSWORD = r"[\x21-\x7e]{8,64}"
SIP_PASSWORD_RULE = "a SIP password is 8 to 64 printable ASCII characters, no spaces"

_SIP_PASSWORD = re.compile(SIP_PASSWORD)


def imei_problem(value: str) -> str | None:
    """What is wrong with an IMEI (15 digits, the last a Luhn check digit), in words; None: nothing."""
    if len(value) != 15 or not value.isdigit():
        return "an IMEI is 15 digits"
    if not luhn.is_valid(value):
        return "the IMEI's check digit is wrong (Luhn)"
    return None


def is_sip_password(value: str) -> bool:
    return _SIP_PASSWORD.fullmatch(value) is not None
