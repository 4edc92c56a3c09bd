"""Production refuses the development secrets however they are spelt, and settings it needs given on purpose."""

import base64
import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.dev_secrets import (
    DEV_API_KEYS,
    DEV_CMMS_TOKEN,
    DEV_CODEC_SERVER_TOKEN,
    DEV_DATABASE_ENCRYPTION_KEYS,
    DEV_ESPF_PASSWORD,
    DEV_PAYLOAD_KEYS,
    DEV_PORTABILLING_PASSWORD,
    DEV_SECRET_KEY,
    DEV_SMS_PASSWORD,
)
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_KEY = DEV_PAYLOAD_KEYS.partition(":")[2]
DATABASE_KEY = DEV_DATABASE_ENCRYPTION_KEYS.partition(":")[2]


_real_keys = itertools.count(1)


def _real_key() -> str:
    """A 32-byte key of no development key ring, a new one each call; the same ones in every process, as
    the parameters below name tests by them and the test processes of `make test` must collect the same."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"real-key-{next(_real_keys)}".encode()).digest()).decode()


REAL: dict[str, Any] = {
    "environment": "production",
    "secret_key": "s" * 32,
    "api_keys": f"{'w' * 32}:website,shop@{'a' * 32}:admin",
    "cmms_url": "https://cmms.example.net",
    "cmms_token": "a-real-cmms-token",
    "sms_gateway_url": "https://kannel.example.net/cgi-bin/sendsms",
    "sms_password": "a-real-sms-password",
    "payload_keys": f"p1:{_real_key()}",
    "database_encryption_keys": f"d1:{_real_key()}",
    "codec_server_token": "a-real-codec-token-of-32-bytes-!",
    "signup_allowed_countries": "*",
    "signup_daily_budget": 20000,
}


def _refusal(**changes: Any) -> str:
    values = {k: v for k, v in (REAL | changes).items() if v is not None}
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, **values)
    return str(raised.value)


def test_real_values_are_accepted() -> None:
    assert Settings(_env_file=None, **REAL).environment == "production"


def test_named_keys_are_accepted_and_a_name_may_repeat() -> None:
    keys = f"shop@{'o' * 32}:website,shop@{'n' * 32}:website,partner-2@{'p' * 32}:website,{'a' * 32}:admin"
    assert Settings(_env_file=None, **(REAL | {"api_keys": keys})).api.keys.get_secret_value() == keys


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        # The development key rings' keys, under another key id, unpadded, with spaces, beside a real key.
        ("payload_keys", f"prod:{PAYLOAD_KEY}"),
        ("payload_keys", f"p1:{PAYLOAD_KEY.rstrip('=')}"),
        ("payload_keys", f"p1: {PAYLOAD_KEY} "),
        ("payload_keys", f"p1:{PAYLOAD_KEY[:20]} {PAYLOAD_KEY[20:]}"),
        ("payload_keys", f"p2:{_real_key()},p1:{PAYLOAD_KEY}"),
        ("payload_keys", f"p1:{DATABASE_KEY}"),  # the other development key is no better
        ("database_encryption_keys", f"prod:{DATABASE_KEY.rstrip('=')}"),
        ("database_encryption_keys", f"d2:{_real_key()}, d1:{DATABASE_KEY}"),
        # The development API keys in another order, or one of them beside a real key.
        ("api_keys", ",".join(reversed(DEV_API_KEYS.split(",")))),
        ("api_keys", "a-real-admin-key:admin, dev-website-key:website"),
        ("api_keys", "a-real-admin-key:admin,dev-admin-key:admin+website"),
        ("api_keys", f"{'a' * 32}:admin,shop@dev-website-key:website"),  # a development key under a name
        ("api_keys", "ops@dev-admin-key:admin"),
        # SECRET_KEY: the development value, or anything shorter than 32 bytes.
        ("secret_key", DEV_SECRET_KEY),
        ("secret_key", "x" * 31),
        ("secret_key", None),
        # The development tokens and passwords, the SMS gateway's and the codec server's included.
        ("cmms_token", DEV_CMMS_TOKEN),
        ("cmms_token", f" {DEV_CMMS_TOKEN} "),
        ("codec_server_token", DEV_CODEC_SERVER_TOKEN),
        ("codec_server_token", None),
        # Too short to stand for a credential: empty, or under 32 bytes.
        ("codec_server_token", ""),
        ("codec_server_token", "c" * 31),
        ("codec_server_token", " " + "c" * 31 + " "),
        ("sms_password", DEV_SMS_PASSWORD),
        ("sms_password", None),
        # No fallback to the simulator: the CMMS and the SMS gateway are named on purpose.
        ("cmms_url", None),
        ("sms_gateway_url", None),
        # Every country (`*`) and no day's SMS budget chosen on purpose: the default is no decision.
        ("signup_daily_budget", None),
    ],
)
def test_development_values_are_refused_however_spelt(setting: str, value: str | None) -> None:
    message = _refusal(**{setting: value})
    assert setting.upper() in message
    secret = value.strip() if value else ""
    assert not secret or secret not in message  # the value itself is never echoed


# Beside PortaBilling, its API's address and both of its passwords are production's to give.
BESIDE_PORTABILLING: dict[str, Any] = {
    "billing_source": "portabilling",
    "portabilling_url": "https://portabilling.example.net",
    "portabilling_password": "a-real-portabilling-password",
    "espf_password": "a-real-espf-password-of-32-bytes",
}


@pytest.mark.parametrize(
    "api_keys",
    [
        "",  # no key at all
        f"{'w' * 31}:website,{'a' * 32}:admin",  # one key short
        f":website,{'a' * 32}:admin",  # an empty key
        f"{'a' * 32}:admin,shop@{'w' * 31}:website",  # the key after a name is what counts
        f"{'a' * 32}:admin,shop@:website",
    ],
)
def test_short_or_empty_api_keys_are_refused(api_keys: str) -> None:
    message = _refusal(api_keys=api_keys)
    assert "API_KEYS" in message and "32 bytes" in message
    assert "w" * 31 not in message


def test_a_named_key_is_measured_without_its_name() -> None:
    # 32 bytes only with the name in front: the key itself is short.
    assert len(f"shop@{'w' * 27}") == 32
    assert "API_KEYS" in _refusal(api_keys=f"{'a' * 32}:admin,shop@{'w' * 27}:website")
    # A key of 32 bytes that holds an `@` after something that is not a name is a key as written.
    assert Settings(_env_file=None, **(REAL | {"api_keys": f"not a name@{'w' * 21}:website"})).environment


def test_real_values_beside_portabilling_are_accepted() -> None:
    assert Settings(_env_file=None, **REAL, **BESIDE_PORTABILLING).billing_source == "portabilling"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("portabilling_password", DEV_PORTABILLING_PASSWORD),
        ("portabilling_password", f" {DEV_PORTABILLING_PASSWORD}"),
        ("portabilling_password", None),
        ("espf_password", DEV_ESPF_PASSWORD),
        ("espf_password", None),
        # Another development secret is no better.
        ("espf_password", DEV_SMS_PASSWORD),
        # Empty (`espf:` would open the receiver) or short.
        ("espf_password", ""),
        ("espf_password", "e" * 31),
        # No fallback to the simulator's address.
        ("portabilling_url", None),
    ],
)
def test_beside_portabilling_its_development_values_are_refused(setting: str, value: str | None) -> None:
    message = _refusal(**(BESIDE_PORTABILLING | {setting: value}))
    assert setting.upper() in message
    secret = value.strip() if value else ""
    assert not secret or secret not in message


def test_builtin_billing_reads_no_portabilling_setting_so_production_asks_for_none() -> None:
    # A deployment without PortaBilling must not invent its passwords; it serves no ESPF events.
    settings = Settings(_env_file=None, **REAL)
    assert settings.billing_source == "builtin"
    assert settings.portabilling.espf_password.get_secret_value() == DEV_ESPF_PASSWORD


def test_every_problem_is_named_on_one_line() -> None:
    message = _refusal(secret_key="short", cmms_url=None)
    line = next(line for line in message.splitlines() if "SECRET_KEY" in line)
    assert "CMMS_URL" in line


def test_development_keeps_its_defaults() -> None:
    assert Settings(_env_file=None).environment == "development"
    assert Settings(_env_file=None, environment="test").secret_key.get_secret_value() == DEV_SECRET_KEY


def test_the_image_runs_production() -> None:
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    env = [word for line in lines if line[:1] == ["ENV"] for word in line[1:]]
    assert "ENVIRONMENT=production" in env
