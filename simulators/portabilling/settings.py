"""The PortaBilling simulator's settings, read from the environment (and an optional `.env`)."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PortaBillingSimSettings(BaseSettings):
    """Field names are the environment variables (case-insensitive). The credentials share their names
    and development defaults with the service's settings, so one `.env` (or none: `make run`) drives
    both sides; the defaults are written here again because a simulator imports nothing of the
    service (tests/test_simulator_settings.py holds them equal)."""

    # `extra="ignore"`: the project's `.env` also holds the API's and the worker's settings.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    portabilling_sim_host: str = "127.0.0.1"
    portabilling_sim_port: int = 8200
    # Where the simulated PortaBilling keeps its data: in memory only (a restart starts empty). The
    # setting exists so that a path given here fails loudly instead of being ignored.
    portabilling_sim_state: Literal["memory"] = "memory"
    # The API user the JSON API and the status API accept (what the service logs in with).
    portabilling_login: str = "cmms-sync"
    portabilling_password: SecretStr = SecretStr("portabilling-dev")
    # The account custom field holding the IMEI.
    portabilling_imei_field: str = "IMEI"
    # The HTTP basic credentials sent with each ESPF event, and where the events go.
    espf_username: str = "espf"
    espf_password: SecretStr = SecretStr("espf-dev")
    portabilling_sim_event_url: str = "http://127.0.0.1:8000/v1/portabilling/events"
    # The body the ESPF status API takes: `json` (MR101 and later) or `form`
    # (application/x-www-form-urlencoded only, as MR100's documentation says); the other is answered 415.
    portabilling_sim_status_encoding: Literal["json", "form"] = "json"
    # How long a session token lasts.
    portabilling_sim_token_ttl_seconds: float = Field(default=3600.0, gt=0)
    # Every Nth event is delivered twice on purpose (as an at-least-once sender may); 0: never.
    portabilling_sim_repeat_every: int = Field(default=10, ge=0)
    # Event deliveries started per second at most (PortaBilling sends about 10); 0: as fast as the
    # receiver answers. And how many are in flight at once.
    portabilling_sim_events_per_second: float = Field(default=0.0, ge=0)
    portabilling_sim_event_concurrency: int = Field(default=4, ge=1, le=64)
    # Added to every product, customer and account id handed out, so that the objects of two
    # simulators never share an id (the tests' simulators share one Temporal server).
    portabilling_sim_id_offset: int = Field(default=0, ge=0, le=10**12)


@lru_cache
def get_settings() -> PortaBillingSimSettings:
    """The settings of this process, read once (never at import time)."""
    return PortaBillingSimSettings()
