"""Field types the API validates at its edge, shared by every resource.

Each one's JSON schema says what its validator checks (patterns, lengths), so that the OpenAPI document
refuses what the API refuses; where a rule is beyond a schema (an IMEI's check digit, a number's
numbering plan) the schema names a `format` for it, which a client or a test can be taught.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, SecretStr, StringConstraints, WithJsonSchema

from billing.formats import RESOURCE_ID, SIP_PASSWORD_RULE, imei_problem, is_sip_password

# No string holds NUL (U+0000): PostgreSQL's text cannot, so billing could neither store nor look one up.
NO_NUL = r"^[^\x00]*$"
# Surrounding whitespace is stripped and something must be left, with no NUL: the pattern says both.
TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"

ResourceId = Annotated[str, StringConstraints(pattern=f"^{RESOURCE_ID}$")]
# An id as a path or a filter names it: one that does not exist is 404 (or no match), not malformed.
AnyId = Annotated[str, StringConstraints(pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Field(pattern=TEXT)]
CustomFieldName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
DomainName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=253,
        pattern=r"(?i)^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    ),
]


def _whole(value: Any) -> Any:
    """A JSON number with no fractional part (`5.0`) is the integer it equals: JSON Schema's `integer`."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# With StrictInt (never a string or a boolean: `"5"`, `true`), `5.0` counts as 5, as JSON Schema has it:
# `Annotated[StrictInt, Field(ge=0), WHOLE]`, after the bounds, so that the schema keeps them.
WHOLE = BeforeValidator(_whole)

# RFC 3339's date-time, JSON Schema's `format: date-time`: the offset is required.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> Any:
    """Only what `format: date-time` says: pydantic alone also takes numbers (`0.5`, seconds since 1970)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("a date-time is RFC 3339 with its offset, e.g. 2026-12-02T13:00:00Z")


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC, as billing stores and compares it. One whose offset takes it past year 1 or
    year 9999 (`0001-01-01T00:00:00+05:00`) is clamped to the first or last instant there is: nothing
    billing holds is earlier or later, so a filter or an expiry means the same."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)


DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]

IMEI_FORMAT = "imei"


def _check_imei(value: str) -> str:
    problem = imei_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Imei = Annotated[
    str,
    AfterValidator(_check_imei),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{15}$",
            "format": IMEI_FORMAT,
            "description": "15 digits, the last a Luhn check digit",
            "examples": ["490154203237518"],
        }
    ),
]

MOBILE_NUMBER_FORMAT = "mobile-number"
# A mobile number in any international format (`+49 151 1234 5678`, `0049…`, `49…`); whether it is a
# valid mobile number is the numbering plans' (libphonenumber's), beyond a pattern.
MobileNumber = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "format": MOBILE_NUMBER_FORMAT,
            "description": "A mobile number in international format",
            "examples": ["+4915112345678"],
        }
    ),
]


def _check_sip_password(value: SecretStr) -> SecretStr:
    if not is_sip_password(value.get_secret_value()):
        raise ValueError(SIP_PASSWORD_RULE)
    return value


# Kept secret in reprs and logs; the error never echoes it.
SipPassword = Annotated[
    SecretStr,
    AfterValidator(_check_sip_password),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": 8,
            "maxLength": 64,
            "pattern": "^[!-~]{8,64}$",
            "description": "8 to 64 printable ASCII characters, no spaces",
        }
    ),
]
