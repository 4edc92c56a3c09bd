"""Settings production accepts: every setting it insists on, each a real (non-development) value."""

import base64
from typing import Any

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "secret_key": "s" * 32,
    "api_keys": "k" * 32 + ":admin",
    "cmms_token": "t",
    "payload_keys": "p1:" + base64.urlsafe_b64encode(b"p" * 32).decode(),
    "database_encryption_keys": "d1:" + base64.urlsafe_b64encode(b"d" * 32).decode(),
    "codec_server_token": "c" * 32,
    "sms_password": "p" * 32,
    "cmms_url": "https://cmms.example.net",
    "sms_gateway_url": "https://kannel.example.net/cgi-bin/sendsms",
    "signup_allowed_countries": "*",
    "signup_daily_budget": "20000",
}
