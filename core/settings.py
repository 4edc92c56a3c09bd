"""Typed settings, read from the environment and an optional `.env` (never at import time)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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

    # How often the API looks for orders whose workflow did not start (Temporal unreachable when the
    # order came, or the API stopped in between) and starts them; also how old such an order must be.
    order_start_retry_seconds: float = Field(default=10.0, gt=0)

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
    """The process's settings, read once on first use."""
    return Settings()
