"""Typed settings, read from the environment and an optional `.env` (never at import time)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")
DEV_SECRET_KEY = "dev-secret-key-change-me"


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
    api_keys: SecretStr = SecretStr("dev-website-key:website,dev-cmms-key:cmms,dev-admin-key:admin")

    # CMMS (the simulator by default)
    cmms_url: str = "http://127.0.0.1:8100"
    cmms_token: SecretStr = SecretStr("dev-cmms-token")
    cmms_timeout_seconds: float = 10.0
    # Most CMMS calls a second, across every worker (the Temporal server enforces it); unset: no limit.
    cmms_rate_limit_per_second: float | None = None

    # Keys the service derives from: request fingerprints, OTP HMACs.
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    # Provisioning defaults (use case 3): the effective profile and domain fall back to these.
    default_profile: str = "Residential"
    default_domain: str = "sip.example.net"

    # OTT signups
    signup_allowed_countries: str = ""
    ott_customer_id: str = "ott"
    ott_product_id: str = "ott-standard"

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError("SECRET_KEY must be set outside development")
        return self

    @property
    def allowed_countries(self) -> frozenset[str]:
        return frozenset(c.strip().upper() for c in self.signup_allowed_countries.split(",") if c.strip())


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return Settings()
