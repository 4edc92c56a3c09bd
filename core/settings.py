"""Typed settings, read from the environment and an optional `.env` (never at import time)."""

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.crypto import KeyRing
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
    DEV_SMS_USERNAME,
    production_problems,
)

__all__ = [
    "DEV_API_KEYS",
    "DEV_CMMS_TOKEN",
    "DEV_CODEC_SERVER_TOKEN",
    "DEV_DATABASE_ENCRYPTION_KEYS",
    "DEV_PAYLOAD_KEYS",
    "DEV_SECRET_KEY",
    "EXPLICIT_IN_PRODUCTION",
    "EXPLICIT_IN_PRODUCTION_BESIDE_PORTABILLING",
    "VAR_DIR",
    "Settings",
    "get_settings",
    "settings_error_line",
]

VAR_DIR = Path("var")
# The settings production needs given on purpose: their defaults point at the local simulator.
EXPLICIT_IN_PRODUCTION = ("cmms_url", "sms_gateway_url")
# The same, beside PortaBilling only (BILLING_SOURCE=portabilling).
EXPLICIT_IN_PRODUCTION_BESIDE_PORTABILLING = ("portabilling_url",)


class Settings(BaseSettings):
    """Everything the API, the worker and the scripts can be told; secrets are `SecretStr`."""

    # Errors never show the input: it holds every secret.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "provisioning"
    temporal_ui_port: int = 8233
    # A TLS cluster or Temporal Cloud. TLS is on when asked for, or when any of the files or the API
    # key is given: the CA file to trust (the system's roots when unset), a client certificate and
    # its key for mTLS (both or neither), the name the server's certificate carries when it is not
    # the address's host, and a Temporal Cloud API key (sent as a bearer token, over TLS only).
    temporal_tls: bool = False
    temporal_tls_server_ca_cert_path: Path | None = None
    temporal_tls_client_cert_path: Path | None = None
    temporal_tls_client_key_path: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # Billing database: SQLite under var/ unless DATABASE_URL names another (postgresql+psycopg://…).
    database_url: str = f"sqlite:///{VAR_DIR}/billing.sqlite3"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: SecretStr = SecretStr(DEV_API_KEYS)
    # The largest request body the API reads; larger ones are refused (413) before the key is checked.
    api_max_body_bytes: int = Field(default=64 * 1024, gt=0)

    # CMMS (the simulator by default)
    cmms_url: str = "http://127.0.0.1:8100"
    cmms_token: SecretStr = SecretStr(DEV_CMMS_TOKEN)
    cmms_timeout_seconds: float = 10.0
    # Most CMMS calls a second, across every worker (the Temporal server enforces it); unset: no limit.
    cmms_rate_limit_per_second: float | None = None

    # Where accounts, customers, products and wallets are kept: `builtin`, this service's own billing
    # database and API; `portabilling`, a PortaBilling beside it, which tells us of changes through ESPF
    # events ("Receiving provisioning events") and is read through its JSON API.
    billing_source: Literal["builtin", "portabilling"] = "builtin"
    # PortaBilling's JSON API and ESPF status API (the PortaBilling simulator by default): its address,
    # the API user we log in as, how long one call may take, the status group our provisioning reports
    # go to (one of PortaBilling's predefined groups), and the account custom field holding the IMEI.
    portabilling_url: str = "http://127.0.0.1:8200"
    portabilling_login: str = "cmms-sync"
    portabilling_password: SecretStr = SecretStr(DEV_PORTABILLING_PASSWORD)
    portabilling_timeout_seconds: float = Field(default=10.0, gt=0)
    portabilling_status_group: str = "VoIP"
    portabilling_imei_field: str = "IMEI"
    # The HTTP basic credentials PortaBilling's ESPF sends with each event to /v1/portabilling/events.
    espf_username: str = "espf"
    espf_password: SecretStr = SecretStr(DEV_ESPF_PASSWORD)
    # How long a received event is kept, to answer PortaBilling's repeats of it as repeats (it repeats
    # within minutes; a week is ample). Older ones are deleted hourly by the API.
    portabilling_event_retention_days: int = Field(default=7, ge=1)
    # Where `make run` starts the PortaBilling simulator (BILLING_SOURCE=portabilling only).
    portabilling_sim_port: int = 8200

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

    # OTT signups. Countries: ISO 3166 codes, comma-separated; `*` allows all. Empty allows all too,
    # outside production only: an open list there invites SMS pumping, so production wants it said.
    signup_allowed_countries: str = ""
    # Who generates, texts and checks the code: billing (the v1 contract), or the CMMS, which then
    # confirms the number with the credentials it issued (the PortaBilling integration's way).
    signup_verification: Literal["billing", "cmms"] = "billing"
    ott_customer_id: str = "ott"
    ott_product_id: str = "ott-standard"
    # OTT signups (use case 2): the code policy, the API's rate limits, the SMS gateway.
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
    # Verify calls per phone number and per API client, and wrong codes per number across all its
    # signups and resends: past any of them, 429 with Retry-After.
    signup_verify_number_limit: int = 20
    signup_verify_number_window_seconds: int = 3600
    signup_verify_client_limit: int = 600
    signup_verify_client_window_seconds: int = 60
    signup_wrong_code_limit: int = 10
    signup_wrong_code_window_seconds: int = 86400
    # Where the API processes keep those limits together: Redis when set (`redis://host:6379/0`),
    # else the billing database.
    redis_url: SecretStr | None = None
    # How long a verify call waits for the account to be provisioned before answering 503.
    signup_verify_timeout_seconds: float = 20.0
    # `{code}` and `{minutes}` are filled in.
    sms_template: str = "Your security code is {code}. It expires in {minutes} minutes."
    # What `make run` puts in front of the simulator's SMSC: "simulator" (its Kannel-compatible sink
    # answers sendsms itself) or "kannel" (a real bearerbox and smsbox, Debian's `kannel` package).
    sms_gateway: Literal["simulator", "kannel"] = "simulator"
    # Kannel's sendsms interface (the simulator's sink by default).
    sms_gateway_url: str = "http://127.0.0.1:8100/cgi-bin/sendsms"
    sms_username: str = DEV_SMS_USERNAME
    sms_password: SecretStr = SecretStr(DEV_SMS_PASSWORD)
    sms_timeout_seconds: float = 5.0
    # The sender Kannel puts on the SMS (`X-Kannel-From`); empty: the smsbox's `global-sender`.
    sms_sender: str = ""
    # The API's address as the Kannel smsbox reaches it: each code SMS asks for delivery reports at
    # `<this>/v1/sms/delivery-reports/<per-message token>`. Empty: no delivery reports are asked for.
    sms_report_base_url: str = "http://127.0.0.1:8000"

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

    # Secrets and observability. Key rings are `kid:base64url-32-bytes,...`: the first
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
        beside_portabilling = self.billing_source == "portabilling"
        # PortaBilling's credentials are only read beside PortaBilling: a built-in deployment need not
        # invent any (and serves no ESPF events, so the development ESPF password opens nothing).
        portabilling_tokens = (
            {
                "PORTABILLING_PASSWORD": self.portabilling_password.get_secret_value(),
                "ESPF_PASSWORD": self.espf_password.get_secret_value(),
            }
            if beside_portabilling
            else {}
        )
        explicit = EXPLICIT_IN_PRODUCTION + (EXPLICIT_IN_PRODUCTION_BESIDE_PORTABILLING if beside_portabilling else ())
        problems = production_problems(
            rings={
                "PAYLOAD_KEYS": self.payload_keys.get_secret_value(),
                "DATABASE_ENCRYPTION_KEYS": self.database_encryption_keys.get_secret_value(),
            },
            tokens={
                "CMMS_TOKEN": self.cmms_token.get_secret_value(),
                "CODEC_SERVER_TOKEN": self.codec_server_token.get_secret_value(),
                "SMS_PASSWORD": self.sms_password.get_secret_value(),
                **portabilling_tokens,
            },
            api_keys=self.api_keys.get_secret_value(),
            secret_key=self.secret_key.get_secret_value(),
            explicit={name.upper(): name in self.model_fields_set for name in explicit},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_an_open_signup_country_list_in_production(self) -> "Settings":
        if self.environment == "production" and not self.signup_allowed_countries.replace(",", "").strip():
            raise ValueError("SIGNUP_ALLOWED_COUNTRIES must name the countries signups serve (or `*` for all)")
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

    @model_validator(mode="after")
    def _client_certificate_comes_with_its_key(self) -> "Settings":
        if (self.temporal_tls_client_cert_path is None) != (self.temporal_tls_client_key_path is None):
            raise ValueError("TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together")
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        return (
            self.temporal_tls
            or self.temporal_api_key is not None
            or any(
                (
                    self.temporal_tls_server_ca_cert_path,
                    self.temporal_tls_client_cert_path,
                    self.temporal_tls_server_name,
                )
            )
        )

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
        """The countries signups serve; empty: all of them."""
        countries = frozenset(c.strip().upper() for c in self.signup_allowed_countries.split(",") if c.strip())
        return frozenset() if "*" in countries else countries


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once on first use. Settings that cannot be used end the process
    with one line naming them (no traceback, and no value echoed: pydantic's message would show the input)."""
    try:
        return Settings()
    except ValidationError as err:
        raise SystemExit(f"refusing to start: {settings_error_line(err)}") from None


def settings_error_line(err: ValidationError) -> str:
    """One line naming what is wrong with the settings, without their values."""
    parts = []
    for error in err.errors(include_input=False, include_url=False):
        where = ".".join(str(part).upper() for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
