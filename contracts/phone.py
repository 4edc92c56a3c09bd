"""Phone numbers for OTT signups: normalised to E.164 with `phonenumbers`, checked against the allow list."""

import phonenumbers


class BadPhoneNumber(ValueError):
    """The number cannot be used for a signup; the message says why, in words."""


def normalise(raw: str, allowed_countries: frozenset[str]) -> str:
    """E.164 with its `+` (`+4915112345678`) from any common international format.

    Accepts `+49 151 1234 5678`, `0049 151 12345678`, `4915112345678`; a number must be valid,
    able to receive SMS (mobile) and, when `allowed_countries` is not empty, from one of them.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    elif text and not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise BadPhoneNumber("not a phone number in international format (+<country code><number>)") from None
    if not phonenumbers.is_valid_number(number):
        raise BadPhoneNumber("not a valid phone number")
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise BadPhoneNumber("not a mobile number: the security code is sent by SMS")
    country = phonenumbers.region_code_for_number(number)
    if allowed_countries and country not in allowed_countries:
        raise BadPhoneNumber(f"signups from {country} numbers are not offered")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def country_of(e164: str) -> str:
    """The ISO 3166 country of a number `normalise` answered (`+4915112345678` → `DE`)."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or "ZZ"
