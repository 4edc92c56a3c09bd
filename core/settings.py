"""Typed settings, read from the environment and an optional `.env` (never at import time).

Grouped by the component that reads them: `settings.temporal`, `settings.cmms`, `settings.signups`…,
each part handed to its component by the entry point. The environment variables keep their flat names
(`TEMPORAL_TASK_QUEUE`, `CMMS_URL`): each part's field carries its variable's name as its alias, and
`Settings` reads those variables (and `.env`) and groups them. `Settings(temporal_address=…)` takes
them by name too, in lower case, as the environment gives them."""

import re
from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from contracts.portabilling import AttributePath
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
    "ApiSettings",
    "CmmsSettings",
    "CodecServerSettings",
    "DatabaseSettings",
    "Environment",
    "LogSettings",
    "OutboxSettings",
    "PortaBillingSettings",
    "ProvisioningSettings",
    "ReconciliationSettings",
    "RolloutSettings",
    "Settings",
    "SignupSettings",
    "SipSettings",
    "SmsSettings",
    "TemporalSettings",
    "WorkerSettings",
    "get_settings",
    "settings_error_line",
]

VAR_DIR = Path("var")
# The settings production needs given on purpose: their defaults point at the local simulator.
EXPLICIT_IN_PRODUCTION = ("CMMS_URL", "SMS_GATEWAY_URL")
# The same, beside PortaBilling only (BILLING_SOURCE=portabilling).
EXPLICIT_IN_PRODUCTION_BESIDE_PORTABILLING = ("PORTABILLING_URL",)

Environment = Literal["development", "test", "production"]


def _env(name: str, default: Any, **constraints: Any) -> Any:
    """A part's field, read from the environment variable `name`."""
    return Field(default, alias=name, **constraints)


class _Part(BaseModel):
    """One component's settings; each field's alias is the environment variable it is read from. Built
    by `Settings`, or directly by field name (`TemporalSettings(address=…)`)."""

    # Errors never show the input: it holds secrets.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True)


class TemporalSettings(_Part):
    """Where the Temporal server is, and how to reach it: for `core.temporal.connect`."""

    address: str = _env("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    namespace: str = _env("TEMPORAL_NAMESPACE", "default")
    task_queue: str = _env("TEMPORAL_TASK_QUEUE", "provisioning")
    ui_port: int = _env("TEMPORAL_UI_PORT", 8233)
    # A TLS cluster or Temporal Cloud. TLS is on when asked for, or when any of the files or the API
    # key is given: the CA file to trust (the system's roots when unset), a client certificate and
    # its key for mTLS (both or neither), the name the server's certificate carries when it is not
    # the address's host, and a Temporal Cloud API key (sent as a bearer token, over TLS only).
    tls: bool = _env("TEMPORAL_TLS", False)
    tls_server_ca_cert_path: Path | None = _env("TEMPORAL_TLS_SERVER_CA_CERT_PATH", None)
    tls_client_cert_path: Path | None = _env("TEMPORAL_TLS_CLIENT_CERT_PATH", None)
    tls_client_key_path: Path | None = _env("TEMPORAL_TLS_CLIENT_KEY_PATH", None)
    tls_server_name: str | None = _env("TEMPORAL_TLS_SERVER_NAME", None)
    api_key: SecretStr | None = _env("TEMPORAL_API_KEY", None)
    # The key ring Temporal payloads are encrypted with (core.codec); the codec server decrypts with it.
    # Key rings are `kid:base64url-32-bytes,...`: the first encrypts, all decrypt, so a key is rotated
    # by putting a new one first and keeping the old after it.
    payload_keys: SecretStr = _env("PAYLOAD_KEYS", SecretStr(DEV_PAYLOAD_KEYS))

    @property
    def uses_tls(self) -> bool:
        return (
            self.tls
            or self.api_key is not None
            or any((self.tls_server_ca_cert_path, self.tls_client_cert_path, self.tls_server_name))
        )


class DatabaseSettings(_Part):
    """The billing database."""

    # SQLite under var/ unless DATABASE_URL names another (postgresql+psycopg://…).
    url: str = _env("DATABASE_URL", f"sqlite:///{VAR_DIR}/billing.sqlite3")
    # The key ring SIP passwords are encrypted with at rest (billing.encrypted); the format is PAYLOAD_KEYS'.
    encryption_keys: SecretStr = _env("DATABASE_ENCRYPTION_KEYS", SecretStr(DEV_DATABASE_ENCRYPTION_KEYS))

    @property
    def key_ring(self) -> KeyRing:
        return KeyRing.parse(self.encryption_keys.get_secret_value())


class ApiSettings(_Part):
    """The HTTP API."""

    host: str = _env("API_HOST", "127.0.0.1")
    port: int = _env("API_PORT", 8000)
    keys: SecretStr = _env("API_KEYS", SecretStr(DEV_API_KEYS))
    # The largest request body the API reads; larger ones are refused (413) before the key is checked.
    max_body_bytes: int = _env("API_MAX_BODY_BYTES", 64 * 1024, gt=0)
    # How long an idle connection stays open. Longer than any client's or load balancer's own idle
    # expiry (httpx's 5 s, a cloud balancer's 60 s): when both sides wait the same time, the server
    # closes a connection just as the client sends on it, and that request fails.
    keep_alive_seconds: int = _env("API_KEEP_ALIVE_SECONDS", 75, gt=0)
    # How long /metrics answers the last count of the workflows in flight before it asks Temporal again
    # (five visibility queries); anyone may scrape, so scrapes in between must cost Temporal nothing.
    metrics_refresh_seconds: float = _env("API_METRICS_REFRESH_SECONDS", 5.0, ge=0)


class CmmsSettings(_Part):
    """The CMMS (the simulator by default), for `clients.cmms.CmmsClient`."""

    url: str = _env("CMMS_URL", "http://127.0.0.1:8100")
    token: SecretStr = _env("CMMS_TOKEN", SecretStr(DEV_CMMS_TOKEN))
    timeout_seconds: float = _env("CMMS_TIMEOUT_SECONDS", 10.0)
    # Most CMMS calls a second, across every worker (the Temporal server enforces it); unset: no limit.
    rate_limit_per_second: float | None = _env("CMMS_RATE_LIMIT_PER_SECOND", None)


class PortaBillingSettings(_Part):
    """PortaBilling, when it is the billing (BILLING_SOURCE=portabilling).

    Its JSON API and ESPF status API (the PortaBilling simulator by default): its address, the API user
    we log in as, how long one call may take, the status group our provisioning reports go to (one of
    PortaBilling's predefined groups), and the account custom field holding the IMEI."""

    url: str = _env("PORTABILLING_URL", "http://127.0.0.1:8200")
    login: str = _env("PORTABILLING_LOGIN", "cmms-sync")
    password: SecretStr = _env("PORTABILLING_PASSWORD", SecretStr(DEV_PORTABILLING_PASSWORD))
    timeout_seconds: float = _env("PORTABILLING_TIMEOUT_SECONDS", 10.0, gt=0)
    status_group: str = _env("PORTABILLING_STATUS_GROUP", "VoIP")
    imei_field: str = _env("PORTABILLING_IMEI_FIELD", "IMEI")
    # Where Product/get_product_info shows that the product's messaging service policy sends push events
    # to the AudioCodes CMMS (no public source: docs/portabilling.md, "Messaging"); empty: never drive it.
    messaging_policy_path: str = _env(
        "PORTABILLING_MESSAGING_POLICY_PATH", "service_policies[service=messaging].push_events"
    )
    # The HTTP basic credentials PortaBilling's ESPF sends with each event to /v1/portabilling/events.
    espf_username: str = _env("ESPF_USERNAME", "espf")
    espf_password: SecretStr = _env("ESPF_PASSWORD", SecretStr(DEV_ESPF_PASSWORD))
    # How long a received event is kept, to answer PortaBilling's repeats of it as repeats (it repeats
    # within minutes; a week is ample). Older ones are deleted hourly by the API.
    event_retention_days: int = _env("PORTABILLING_EVENT_RETENTION_DAYS", 7, ge=1)
    # Where `make run` starts the PortaBilling simulator (BILLING_SOURCE=portabilling only).
    sim_port: int = _env("PORTABILLING_SIM_PORT", 8200)

    @field_validator("messaging_policy_path")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if value:
            AttributePath(value)  # a ValueError saying what a path looks like
        return value

    @property
    def messaging_policy(self) -> AttributePath | None:
        """Where the messaging service policy's push flag is read; None: messaging is never driven."""
        return AttributePath(self.messaging_policy_path) if self.messaging_policy_path else None


class OutboxSettings(_Part):
    """The outbox relay (services.outbox): what a committed change must tell Temporal is delivered right
    after the commit; a record left undelivered (Temporal away, the API stopped) is looked for every
    OUTBOX_POLL_SECONDS, taken by one API process for OUTBOX_LEASE_SECONDS at a time, and tried again
    with a backoff of at most OUTBOX_RETRY_MAX_SECONDS."""

    poll_seconds: float = _env("OUTBOX_POLL_SECONDS", 1.0, gt=0)
    lease_seconds: float = _env("OUTBOX_LEASE_SECONDS", 10.0, gt=0)
    retry_max_seconds: float = _env("OUTBOX_RETRY_MAX_SECONDS", 5.0, gt=0)


class ProvisioningSettings(_Part):
    """What an account's CMMS record is made of, where billing leaves it open."""

    # The effective profile and domain fall back to these.
    default_profile: str = _env("DEFAULT_PROFILE", "Residential")
    default_domain: str = _env("DEFAULT_DOMAIN", "sip.example.net")
    # The profiles the CMMS knows, checked at the API (empty: any).
    profiles: str = _env("CMMS_PROFILES", "Residential,Business")
    # An idle account's workflow keeps a timer only for a wake-up due within this many seconds; one due
    # later ends, and the wake sweep starts it again in time (built-in billing only).
    idle_timer_horizon_seconds: float = _env("ACCOUNT_IDLE_TIMER_HORIZON_SECONDS", 3600.0, gt=0)
    # How often the worker looks for accounts due within the horizon (0: never; then every account with a
    # wake-up keeps its workflow and timer). Must be shorter than the horizon, or it counts as 0.
    wake_sweep_seconds: float = _env("ACCOUNT_WAKE_SWEEP_SECONDS", 300.0, ge=0)

    @property
    def idle_horizon(self) -> timedelta | None:
        """The idle-timer horizon when a sweep wakes the accounts due within it; None: no sweep."""
        if 0 < self.wake_sweep_seconds < self.idle_timer_horizon_seconds:
            return timedelta(seconds=self.idle_timer_horizon_seconds)
        return None

    @property
    def known_profiles(self) -> frozenset[str]:
        """The profile names the CMMS accepts (empty: not known up front, the CMMS decides)."""
        return frozenset(p.strip() for p in self.profiles.split(",") if p.strip())


class SipSettings(_Part):
    """The SIP registrar kept in step with billing beside the CMMS (built-in billing only): `kamailio`, a
    subscriber table in Kamailio's own layout (ha1/ha1b, never the password) in a database of its own that
    Kamailio's auth_db reads; `none`, no registrar (beside PortaBilling, PortaSIP is the registrar)."""

    registrar: Literal["none", "kamailio"] = _env("SIP_REGISTRAR", "none")
    # The registrar's database (SQLite under var/ unless it names another, postgresql+psycopg://…).
    database_url: str = _env("SIP_DATABASE_URL", f"sqlite:///{VAR_DIR}/sip.sqlite3")
    # The UDP port of 127.0.0.1 `make run` starts Kamailio on.
    port: int = _env("SIP_PORT", 5060, ge=1, le=65535)

    @property
    def enabled(self) -> bool:
        return self.registrar != "none"


class RolloutSettings(_Part):
    """How a customer's rollout walks its accounts: ids per page, CMMS syncs in flight at once."""

    page_size: int = _env("ROLLOUT_PAGE_SIZE", 200)
    window: int = _env("ROLLOUT_WINDOW", 50)


class ImportSettings(_Part):
    """Bulk imports (services.imports): how large a file the API takes, and how the import workflow walks
    its rows (rows per page, CMMS syncs in flight at once; the CMMS's rate limit holds either way)."""

    # The largest body `POST /v1/imports` reads (the other routes keep API_MAX_BODY_BYTES); a larger file
    # is imported from disk with `python -m services.imports FILE`.
    max_body_bytes: int = _env("IMPORT_MAX_BODY_BYTES", 4 * 1024 * 1024, gt=0)
    page_size: int = _env("IMPORT_PAGE_SIZE", 100, gt=0, le=1000)
    window: int = _env("IMPORT_WINDOW", 50, gt=0)


class SignupSettings(_Part):
    """OTT signups: who may sign up, the code policy, the API's rate limits."""

    # Countries: ISO 3166 codes, comma-separated; `*` allows all. Empty allows all too, outside
    # production only: an open list there invites SMS pumping, so production wants it said.
    countries: str = _env("SIGNUP_ALLOWED_COUNTRIES", "")
    # Who generates, texts and checks the code: billing (the v1 contract), or the CMMS, which then
    # confirms the number with the credentials it issued (the PortaBilling integration's way).
    verification: Literal["billing", "cmms"] = _env("SIGNUP_VERIFICATION", "billing")
    ott_customer_id: str = _env("OTT_CUSTOMER_ID", "ott")
    ott_product_id: str = _env("OTT_PRODUCT_ID", "ott-standard")
    # The code policy.
    code_digits: int = _env("SIGNUP_CODE_DIGITS", 6)
    code_ttl_seconds: int = _env("SIGNUP_CODE_TTL_SECONDS", 600)
    max_attempts: int = _env("SIGNUP_MAX_ATTEMPTS", 5)
    max_sends: int = _env("SIGNUP_MAX_SENDS", 5)
    resend_cooldown_seconds: int = _env("SIGNUP_RESEND_COOLDOWN_SECONDS", 30)
    # Signup requests (start and resend) per phone number, and per API client, in a sliding window.
    number_limit: int = _env("SIGNUP_NUMBER_LIMIT", 10)
    number_window_seconds: int = _env("SIGNUP_NUMBER_WINDOW_SECONDS", 3600)
    client_limit: int = _env("SIGNUP_CLIENT_LIMIT", 600)
    client_window_seconds: int = _env("SIGNUP_CLIENT_WINDOW_SECONDS", 60)
    # Verify calls per phone number and per API client, and wrong codes per number across all its
    # signups and resends: past any of them, 429 with Retry-After.
    verify_number_limit: int = _env("SIGNUP_VERIFY_NUMBER_LIMIT", 20)
    verify_number_window_seconds: int = _env("SIGNUP_VERIFY_NUMBER_WINDOW_SECONDS", 3600)
    verify_client_limit: int = _env("SIGNUP_VERIFY_CLIENT_LIMIT", 600)
    verify_client_window_seconds: int = _env("SIGNUP_VERIFY_CLIENT_WINDOW_SECONDS", 60)
    wrong_code_limit: int = _env("SIGNUP_WRONG_CODE_LIMIT", 10)
    wrong_code_window_seconds: int = _env("SIGNUP_WRONG_CODE_WINDOW_SECONDS", 86400)
    # Guessing across numbers: past this many wrong codes an hour over all numbers, each number's
    # allowance drops to the reduced one (within the same window) and the alert's counter moves.
    wrong_code_hourly_budget: int = _env("SIGNUP_WRONG_CODE_HOURLY_BUDGET", 500, ge=0)
    wrong_code_reduced_limit: int = _env("SIGNUP_WRONG_CODE_REDUCED_LIMIT", 3, ge=1)
    # SMS pumping: code SMS per prefix (the E.164 number without its last four digits) and per country
    # an hour, and over all numbers a day; past one, 429 and no SMS (docs/signups.md).
    prefix_hourly_budget: int = _env("SIGNUP_PREFIX_HOURLY_BUDGET", 30, ge=0)
    country_hourly_budget: int = _env("SIGNUP_COUNTRY_HOURLY_BUDGET", 1000, ge=0)
    daily_budget: int = _env("SIGNUP_DAILY_BUDGET", 10000, ge=0)
    # A prefix (or country) that got this many SMS in the last hour, with fewer than this share of them
    # verified, is paused for SIGNUP_PAUSE_SECONDS: pumped numbers never enter their codes.
    prefix_pause_min_sends: int = _env("SIGNUP_PREFIX_PAUSE_MIN_SENDS", 20, ge=1)
    country_pause_min_sends: int = _env("SIGNUP_COUNTRY_PAUSE_MIN_SENDS", 200, ge=1)
    pause_min_verified_share: float = _env("SIGNUP_PAUSE_MIN_VERIFIED_SHARE", 0.2, ge=0, le=1)
    pause_seconds: int = _env("SIGNUP_PAUSE_SECONDS", 3600, ge=1)
    # Where the API processes keep those limits together: Redis when set (`redis://host:6379/0`),
    # else the billing database.
    redis_url: SecretStr | None = _env("REDIS_URL", None)
    # How long a verify call waits for the account to be provisioned before answering 503.
    verify_timeout_seconds: float = _env("SIGNUP_VERIFY_TIMEOUT_SECONDS", 20.0)
    # How long a signup request waits for its workflow to send the code; past it the API answers 503
    # (no worker polling, Temporal overloaded) rather than holding the request open.
    send_timeout_seconds: float = _env("SIGNUP_SEND_TIMEOUT_SECONDS", 20.0, gt=0)

    @property
    def allowed_countries(self) -> frozenset[str]:
        """The countries signups serve; empty: all of them."""
        countries = frozenset(c.strip().upper() for c in self.countries.split(",") if c.strip())
        return frozenset() if "*" in countries else countries


class SmsSettings(_Part):
    """The signup codes' SMS, through Kannel's sendsms interface (`clients.kannel.KannelClient`)."""

    # `{code}` and `{minutes}` are filled in.
    template: str = _env("SMS_TEMPLATE", "Your security code is {code}. It expires in {minutes} minutes.")
    # What `make run` puts in front of the simulator's SMSC: "simulator" (its Kannel-compatible sink
    # answers sendsms itself) or "kannel" (a real bearerbox and smsbox, Debian's `kannel` package).
    gateway: Literal["simulator", "kannel"] = _env("SMS_GATEWAY", "simulator")
    # Kannel's sendsms interface (the simulator's sink by default).
    gateway_url: str = _env("SMS_GATEWAY_URL", "http://127.0.0.1:8100/cgi-bin/sendsms")
    username: str = _env("SMS_USERNAME", DEV_SMS_USERNAME)
    password: SecretStr = _env("SMS_PASSWORD", SecretStr(DEV_SMS_PASSWORD))
    timeout_seconds: float = _env("SMS_TIMEOUT_SECONDS", 5.0)
    # The sender Kannel puts on the SMS (`X-Kannel-From`); empty: the smsbox's `global-sender`.
    sender: str = _env("SMS_SENDER", "")
    # The API's address as the Kannel smsbox reaches it: each code SMS asks for delivery reports at
    # `<this>/v1/sms/delivery-reports/<per-message token>`. Empty: no delivery reports are asked for.
    report_base_url: str = _env("SMS_REPORT_BASE_URL", "http://127.0.0.1:8000")


class ReconciliationSettings(_Part):
    """Reconciliation (billing against the CMMS): how often the worker's Temporal Schedule runs it
    (`90s`, `15m`, `1h`, `1d`, plain seconds or ISO 8601; `0` or `off`: no schedule, on demand only),
    records compared per page, repairs in flight at once, and the ceiling on the orphans a run deletes
    without an operator's confirmation."""

    every: timedelta | None = _env("RECONCILE_EVERY", timedelta(hours=1))
    page_size: int = _env("RECONCILE_PAGE_SIZE", 200, ge=1, le=1000)
    window: int = _env("RECONCILE_WINDOW", 20, ge=1, le=500)
    # A run holds its orphans' deletion, for an operator to confirm, when they are more than this many
    # records and more than this share of the CMMS's records (or when billing has no accounts at all).
    max_deletions: int = _env("RECONCILE_MAX_DELETIONS", 25, ge=0)
    max_deletion_share: float = _env("RECONCILE_MAX_DELETION_SHARE", 0.05, ge=0, le=1)
    hold_for: timedelta = _env("RECONCILE_HOLD_FOR", timedelta(days=7))  # how long a held run can be confirmed

    @field_validator("every", "hold_for", mode="before")
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

    @field_validator("every")
    @classmethod
    def _positive_every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive, or 0/off to turn the schedule off")
        return value

    @field_validator("hold_for", mode="before")
    @classmethod
    def _some_hold(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "0", "")):
            raise ValueError("must be positive: a held run waits this long for its confirmation")
        return value


class CodecServerSettings(_Part):
    """The codec server the Temporal UI decodes payloads with: loopback unless told otherwise."""

    host: str = _env("CODEC_SERVER_HOST", "127.0.0.1")
    port: int = _env("CODEC_SERVER_PORT", 8234)
    token: SecretStr = _env("CODEC_SERVER_TOKEN", SecretStr(DEV_CODEC_SERVER_TOKEN))
    cors_origins: str = _env("CODEC_SERVER_CORS_ORIGINS", "http://127.0.0.1:8233,http://localhost:8233")  # the UI's
    session_hours: int = _env("CODEC_SERVER_SESSION_HOURS", 8)  # how long an operator's codec login cookie lasts
    # Sign-in attempts (POST /login) per client address: this many at once, regained over the window.
    login_limit: int = _env("CODEC_SERVER_LOGIN_LIMIT", 5, ge=1)
    login_window_seconds: float = _env("CODEC_SERVER_LOGIN_WINDOW_SECONDS", 1.0, gt=0)

    @property
    def origins(self) -> list[str]:
        """The Temporal UI origins the codec server answers cross-origin calls from."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


class WorkerSettings(_Part):
    """The worker process: Prometheus gets its SDK metrics on this loopback port (0: none); the API
    serves /metrics itself."""

    metrics_host: str = _env("WORKER_METRICS_HOST", "127.0.0.1")
    metrics_port: int = _env("WORKER_METRICS_PORT", 9464)


class LogSettings(_Part):
    """Every process's log lines (core.logging)."""

    level: str = _env("LOG_LEVEL", "INFO")
    format: Literal["logfmt", "json"] = _env("LOG_FORMAT", "logfmt")


class _Given(PydanticBaseSettingsSource):
    """The values given to `Settings(…)`; flat ones under their variable's lower-case name, as the
    environment's are, so that the value given wins over the environment's however it is spelt."""

    def __init__(self, settings_cls: type[BaseSettings], given: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._given = given

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for every field at once

    def __call__(self) -> dict[str, Any]:
        return {(key.lower() if key.upper() in _WHERE else key): value for key, value in self._given().items()}


class _Variables(PydanticBaseSettingsSource):
    """The settings' variables among a set of environment variables (the process's, or `.env`'s)."""

    def __init__(self, settings_cls: type[BaseSettings], found: Mapping[str, str | None]) -> None:
        super().__init__(settings_cls)
        self._found = found

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for every field at once

    def __call__(self) -> dict[str, Any]:
        # The found names are lower case: the settings are not case-sensitive.
        names = (variable.lower() for variable in _WHERE)
        return {name: self._found[name] for name in names if name in self._found}


class Settings(BaseSettings):
    """Everything the API, the worker and the scripts can be told, by component; secrets are `SecretStr`."""

    # Errors never show the input: it holds every secret.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Environment = "development"
    # Where accounts, customers, products and wallets are kept: `builtin`, this service's own billing
    # database and API; `portabilling`, a PortaBilling beside it, which tells us of changes through ESPF
    # events ("Receiving provisioning events") and is read through its JSON API.
    billing_source: Literal["builtin", "portabilling"] = "builtin"
    # The key the service derives from: request fingerprints, OTP HMACs, reconciliation digests.
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    cmms: CmmsSettings = Field(default_factory=CmmsSettings)
    portabilling: PortaBillingSettings = Field(default_factory=PortaBillingSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)
    rollouts: RolloutSettings = Field(default_factory=RolloutSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    signups: SignupSettings = Field(default_factory=SignupSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    reconciliation: ReconciliationSettings = Field(default_factory=ReconciliationSettings)
    codec_server: CodecServerSettings = Field(default_factory=CodecServerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The variables are flat, the fields grouped: the values given first, then the process's
        # environment, then `.env` (each read by pydantic-settings, `_env_file=` and case rules included).
        assert isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, DotEnvSettingsSource)
        return (
            _Given(settings_cls, init_settings),
            _Variables(settings_cls, env_settings.env_vars),
            _Variables(settings_cls, dotenv_settings.env_vars),
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _group_by_part(cls, data: Any) -> Any:
        """Flat values (`temporal_address`, `TEMPORAL_ADDRESS`) into their parts (`temporal`); a part
        given whole keeps what it was given over the flat values."""
        if not isinstance(data, dict):
            return data
        grouped: dict[str, Any] = {}
        flat: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            part, _ = _WHERE.get(key.upper(), (None, key)) if isinstance(key, str) else (None, key)
            if part is None:
                grouped[key] = value
            else:
                flat.setdefault(part, {})[key.upper()] = value
        for part, values in flat.items():
            given = grouped.get(part)
            if given is None:
                grouped[part] = values
            elif isinstance(given, Mapping):
                aliases = {name: field.alias for name, field in _PARTS[part].model_fields.items()}
                grouped[part] = values | {aliases.get(key, key): value for key, value in given.items()}
        return grouped

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "Settings":
        if self.environment != "production":
            return self
        beside_portabilling = self.billing_source == "portabilling"
        # PortaBilling's credentials are only read beside PortaBilling: a built-in deployment need not
        # invent any (and serves no ESPF events, so the development ESPF password opens nothing).
        portabilling_tokens = (
            {
                "PORTABILLING_PASSWORD": self.portabilling.password.get_secret_value(),
                "ESPF_PASSWORD": self.portabilling.espf_password.get_secret_value(),
            }
            if beside_portabilling
            else {}
        )
        explicit = EXPLICIT_IN_PRODUCTION + (EXPLICIT_IN_PRODUCTION_BESIDE_PORTABILLING if beside_portabilling else ())
        problems = production_problems(
            rings={
                "PAYLOAD_KEYS": self.temporal.payload_keys.get_secret_value(),
                "DATABASE_ENCRYPTION_KEYS": self.database.encryption_keys.get_secret_value(),
            },
            tokens={
                "CMMS_TOKEN": self.cmms.token.get_secret_value(),
                "CODEC_SERVER_TOKEN": self.codec_server.token.get_secret_value(),
                "SMS_PASSWORD": self.sms.password.get_secret_value(),
                **portabilling_tokens,
            },
            api_keys=self.api.keys.get_secret_value(),
            secret_key=self.secret_key.get_secret_value(),
            explicit={name: self.given(name) for name in explicit},
            # What a caller presents to get in: the codec server's token signs its UI sessions, and
            # ESPF_PASSWORD opens the event receiver (read beside PortaBilling only).
            long_tokens=frozenset({"CODEC_SERVER_TOKEN", "ESPF_PASSWORD"}),
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_an_open_signup_country_list_in_production(self) -> "Settings":
        if self.environment == "production" and not self.signups.countries.replace(",", "").strip():
            raise ValueError("SIGNUP_ALLOWED_COUNTRIES must name the countries signups serve (or `*` for all)")
        return self

    @model_validator(mode="after")
    def _no_registrar_beside_portabilling(self) -> "Settings":
        if self.sip.enabled and self.billing_source == "portabilling":
            raise ValueError(
                "SIP_REGISTRAR=kamailio needs the built-in billing: beside PortaBilling (BILLING_SOURCE=portabilling)"
                " PortaSIP is the SIP registrar; unset SIP_REGISTRAR"
            )
        return self

    @model_validator(mode="after")
    def _refuse_every_country_without_a_daily_budget_in_production(self) -> "Settings":
        # Every country, the costly ranges among them: the day's SMS spend must be a figure chosen on purpose.
        every_country = "*" in (c.strip() for c in self.signups.countries.split(","))
        if self.environment == "production" and every_country and not self.given("SIGNUP_DAILY_BUDGET"):
            raise ValueError("SIGNUP_DAILY_BUDGET must be set explicitly when SIGNUP_ALLOWED_COUNTRIES is `*`")
        return self

    @model_validator(mode="after")
    def _key_rings_parse(self) -> "Settings":
        # Fail at start-up, naming the setting (KeyRing's errors name key ids, never keys).
        for name, ring in (
            ("PAYLOAD_KEYS", self.temporal.payload_keys),
            ("DATABASE_ENCRYPTION_KEYS", self.database.encryption_keys),
        ):
            try:
                KeyRing.parse(ring.get_secret_value())
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        return self

    @model_validator(mode="after")
    def _client_certificate_comes_with_its_key(self) -> "Settings":
        if (self.temporal.tls_client_cert_path is None) != (self.temporal.tls_client_key_path is None):
            raise ValueError("TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together")
        return self

    @classmethod
    def variables(cls) -> frozenset[str]:
        """The name of every environment variable the settings are read from."""
        return frozenset(_WHERE)

    def given(self, variable: str) -> bool:
        """Whether the variable (`CMMS_URL`) was given, rather than left to its default."""
        part, name = _WHERE[variable]
        return name in (self.model_fields_set if part is None else getattr(self, part).model_fields_set)

    def by_variable(self) -> dict[str, Any]:
        """Every setting's value under its environment variable's name."""
        return {
            variable: getattr(self if part is None else getattr(self, part), name)
            for variable, (part, name) in _WHERE.items()
        }

    def with_changes(self, **values: Any) -> "Settings":
        """A copy with some settings changed, each named as its variable is, in lower case (`api_port=…`);
        not validated, as `model_copy` does not (for a test's or benchmark's second process)."""
        top: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        for variable, value in values.items():
            part, name = _WHERE[variable.upper()]
            if part is None:
                top[name] = value
            else:
                parts.setdefault(part, {})[name] = value
        top |= {part: getattr(self, part).model_copy(update=changes) for part, changes in parts.items()}
        return self.model_copy(update=top)


def _parts() -> dict[str, type[_Part]]:
    """Settings' parts by field name (`temporal` → TemporalSettings)."""
    parts: dict[str, type[_Part]] = {}
    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Part):
            parts[name] = field.annotation
    return parts


_PARTS = _parts()
# Each variable's place: its part (None: Settings itself) and its field there.
_WHERE: dict[str, tuple[str | None, str]] = {
    name.upper(): (None, name) for name in Settings.model_fields if name not in _PARTS
} | {str(field.alias): (part, name) for part, model in _PARTS.items() for name, field in model.model_fields.items()}


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once on first use by its entry point. Settings that cannot be used
    end the process with one line naming them (no traceback, and no value echoed: pydantic's message
    would show the input)."""
    try:
        return Settings()
    except ValidationError as err:
        raise SystemExit(f"refusing to start: {settings_error_line(err)}") from None


def settings_error_line(err: ValidationError) -> str:
    """One line naming what is wrong with the settings, by variable, without their values."""
    parts = []
    for error in err.errors(include_input=False, include_url=False):
        loc = error["loc"]
        if loc and loc[0] in _PARTS:
            loc = loc[1:]  # the variable alone: a part's fields are named by their variables
        where = ".".join(str(part).upper() for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
