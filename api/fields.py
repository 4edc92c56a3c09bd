"""Field types the API validates at its edge, shared by every resource."""

import re
from typing import Annotated

from pydantic import AfterValidator, SecretStr, StringConstraints
from stdnum import luhn

ResourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DomainName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=253,
        pattern=r"(?i)^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    ),
]


def _check_imei(value: str) -> str:
    if len(value) != 15 or not value.isdigit():
        raise ValueError("an IMEI is 15 digits")
    if not luhn.is_valid(value):
        raise ValueError("the IMEI's check digit is wrong (Luhn)")
    return value


Imei = Annotated[str, AfterValidator(_check_imei)]


_SIP_PASSWORD = re.compile(r"[\x21-\x7e]{8,64}")


def _check_sip_password(value: SecretStr) -> SecretStr:
    if not _SIP_PASSWORD.fullmatch(value.get_secret_value()):
        raise ValueError("a SIP password is 8 to 64 printable ASCII characters, no spaces")
    return value


# Kept secret in reprs and logs; the error never echoes it.
SipPassword = Annotated[SecretStr, AfterValidator(_check_sip_password)]
