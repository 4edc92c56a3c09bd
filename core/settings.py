"""Typed settings, read from the environment and an optional `.env` (never at import time)."""

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.crypto import KeyRing

VAR_DIR = Path("var")
DEV_SECRET_KEY = "dev-secret-key-change-me"
# Development-only keys (issue 6): fixed so `make run` and the tests work out of the box, refused in production.
DEV_PAYLOAD_KEYS = "dev:ZGV2LXBheWxvYWQta2V5LW5ldmVyLWluLXByb2QhISE="
DEV_DATABASE_ENCRYPTION_KEYS = "dev:ZGV2LWRhdGFiYXNlLWtleS1uZXZlci1pbi1wcm9kISE="
DEV_CODEC_SERVER_TOKEN = "dev-codec-token"
DEV_API_KEYS = "dev-website-key:website,dev-cmms-key:cmms,dev-admin-key:admin"
DEV_CMMS_TOKEN = "dev-cmms-token"


class Settings(BaseSettings):
    """Everything the API, the worker and the scripts can be told; secrets are `SecretStr`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "provisioning"
    temporal_ui_port: int = 8233

    # Billing database: SQLite under var/ unless DATABASE_URL names another (postgresql+psycopg://…).
    database_url: str = f"sqlite:///{VAR_DIR}/billing.sqlite3"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: SecretStr = SecretStr(DEV_API_KEYS)

    # CMMS (the simulator by default)
    cmms_url: str = "http://127.0.0.1:8100"
    cmms_token: SecretStr = SecretStr(DEV_CMMS_TOKEN)
    cmms_timeout_seconds: float = 10.0
    # Most CMMS calls a second, across every worker (the Temporal server enforces it); unset: no limit.
    cmms_rate_limit_per_second: float | None = None

    # The outbox relay (services.outbox): what a committed change must tell Temporal is delivered right
    # after the commit; a record left undelivered (Temporal away, the API stopped) is looked for every
    # OUTBOX_POLL_SECONDS, taken by one API process for OUTBOX_LEASE_SECONDS at a time, and tried again
    # with a backoff of at most OUTBOX_RETRY_MAX_SECONDS.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_lease_seconds: float = Field(default=10.0, gt=0)
    outbox_retry_max_seconds: float = Field(default=5.0, gt=0)

    # Keys the service derives from: request fingerprints, OTP HMACs.
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    # Provisioning defaults (use case 3): the effective profile and domain fall back to these.
    default_profile: str = "Residential"
    default_domain: str = "sip.example.net"

    # OTT signups
    signup_allowed_countries: str = ""
    ott_customer_id: str = "ott"
    ott_product_id: str = "ott-standard"
    # OTT signups (use case 2): the code policy (anchors.md), the API's rate limits, the SMS gateway.
    signup_code_digits: int = 6
    signup_code_ttl_seconds: int = 600
    signup_max_attempts: int = 5
    signup_max_sends: int = 5
    signup_resend_cooldown_seconds: int = 30
    # Signup requests (start and resend) per phone number, and per API client, in a sliding window.
    signup_number_limit: int = 10
    signup_number_window_seconds: int = 3600
    signup_client_limit: int = 600
    signup_client_window_seconds: int = 60
    # How long a verify call waits for the account to be provisioned before answering 503.
    signup_verify_timeout_seconds: float = 20.0
    # `{code}` and `{minutes}` are filled in.
    sms_template: str = "Your security code is {code}. It expires in {minutes} minutes."
    # Kannel's sendsms interface (the simulator's sink by default).
    sms_gateway_url: str = "http://127.0.0.1:8100/cgi-bin/sendsms"
    sms_username: str = "kannel"
    sms_password: SecretStr = SecretStr("kannel-dev")
    sms_timeout_seconds: float = 5.0

    # Customized provisioning (use case 3): the profiles the CMMS knows, checked at the API (empty: any),
    # and how a customer's rollout walks its accounts: ids per page, CMMS syncs in flight at once.
    cmms_profiles: str = "Residential,Business"
    rollout_page_size: int = 200
    rollout_window: int = 50

    # Reconciliation (billing against the CMMS): how often the worker's Temporal Schedule runs it
    # (`90s`, `15m`, `1h`, `1d`, plain seconds or ISO 8601; `0` or `off`: no schedule, on demand only),
    # records compared per page, and repairs in flight at once.
    reconcile_every: timedelta | None = timedelta(hours=1)
    reconcile_page_size: int = Field(default=200, ge=1, le=1000)
    reconcile_window: int = Field(default=20, ge=1, le=500)

    log_level: str = "INFO"

    # Secrets and observability (issue 6). Key rings are `kid:base64url-32-bytes,...`: the first
    # encrypts, all decrypt, so a key is rotated by putting a new one first and keeping the old after it.
    payload_keys: SecretStr = SecretStr(DEV_PAYLOAD_KEYS)  # Temporal payloads (core.codec)
    database_encryption_keys: SecretStr = SecretStr(DEV_DATABASE_ENCRYPTION_KEYS)  # SIP passwords at rest
    # The codec server the Temporal UI decodes payloads with: loopback unless told otherwise.
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = 8234
    codec_server_token: SecretStr = SecretStr(DEV_CODEC_SERVER_TOKEN)
    codec_server_cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"  # the UI's origins
    codec_server_session_hours: int = 8  # how long an operator's codec login cookie lasts
    # Prometheus: the worker's SDK metrics on this loopback port (0: none); the API serves /metrics itself.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464
    log_format: Literal["logfmt", "json"] = "logfmt"

    @field_validator("reconcile_every", mode="before")
    @classmethod
    def _parse_every(cls, value: object) -> object:
        """`off`, `0` → None; `90s`, `15m`, `1h`, `1d` → a timedelta; anything else as pydantic reads it."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("off", "0", ""):
                return None
            match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
            if match:
                unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
                every = timedelta(**{unit: float(match[1])})
                return every or None
        if isinstance(value, int | float) and value == 0:
            return None
        return value

    @field_validator("reconcile_every")
    @classmethod
    def _positive_every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive, or 0/off to turn the schedule off")
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "Settings":
        if self.environment != "production":
            return self
        defaults = {
            "SECRET_KEY": (self.secret_key, DEV_SECRET_KEY),
            "API_KEYS": (self.api_keys, DEV_API_KEYS),
            "CMMS_TOKEN": (self.cmms_token, DEV_CMMS_TOKEN),
            "PAYLOAD_KEYS": (self.payload_keys, DEV_PAYLOAD_KEYS),
            "DATABASE_ENCRYPTION_KEYS": (self.database_encryption_keys, DEV_DATABASE_ENCRYPTION_KEYS),
            "CODEC_SERVER_TOKEN": (self.codec_server_token, DEV_CODEC_SERVER_TOKEN),
        }
        for name, (value, default) in defaults.items():
            # A development key anywhere in a key ring is refused, not only in first place.
            if value.get_secret_value() == default or (name.endswith("KEYS") and default in value.get_secret_value()):
                raise ValueError(f"{name} must be set outside development")
        return self

    @model_validator(mode="after")
    def _key_rings_parse(self) -> "Settings":
        # Fail at start-up, naming the setting (KeyRing's errors name key ids, never keys).
        for name, ring in (
            ("PAYLOAD_KEYS", self.payload_keys),
            ("DATABASE_ENCRYPTION_KEYS", self.database_encryption_keys),
        ):
            try:
                KeyRing.parse(ring.get_secret_value())
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        return self

    @property
    def codec_server_origins(self) -> list[str]:
        """The Temporal UI origins the codec server answers cross-origin calls from."""
        return [o.strip() for o in self.codec_server_cors_origins.split(",") if o.strip()]

    @property
    def known_profiles(self) -> frozenset[str]:
        """The profile names the CMMS accepts (empty: not known up front, the CMMS decides)."""
        return frozenset(p.strip() for p in self.cmms_profiles.split(",") if p.strip())

    @property
    def allowed_countries(self) -> frozenset[str]:
        return frozenset(c.strip().upper() for c in self.signup_allowed_countries.split(",") if c.strip())


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return Settings()
