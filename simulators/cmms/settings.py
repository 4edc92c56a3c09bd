"""The simulator's settings, read from the environment (and an optional `.env`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    """Field names are the environment variables (case-insensitive), so the mapping is obvious. Those
    the service reads too have its development defaults, so that `make run` works with no `.env`
    (tests/test_simulator_settings.py holds them equal)."""

    # `extra="ignore"`: the project's `.env` also holds the API's and the worker's settings.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    cmms_sim_host: str = "127.0.0.1"
    cmms_sim_port: int = 8100
    cmms_token: SecretStr = SecretStr("dev-cmms-token")
    cmms_sim_state: Path = Path("var/cmms-sim.sqlite3")
    # A plain string rather than a list: pydantic-settings would expect JSON for a list.
    cmms_sim_profiles: str = "Residential,Business"
    sms_username: str = "kannel"
    sms_password: SecretStr = SecretStr("kannel-dev")
    # The app side of OTT signups: where the CMMS relays the app's calls, and the key it uses.
    billing_api_url: str = "http://127.0.0.1:8000"
    billing_api_key: SecretStr = SecretStr("dev-cmms-key")
    # `cmms`: this CMMS generates, texts (through its own Kannel sink) and checks the signup codes and
    # confirms the number to billing with the password it issues; `billing`: it relays the app's calls.
    # The same variable as billing's SIGNUP_VERIFICATION, so one setting switches both.
    signup_verification: Literal["billing", "cmms"] = "billing"

    @property
    def profiles(self) -> frozenset[str]:
        """The profile names the simulator accepts."""
        return frozenset(p.strip() for p in self.cmms_sim_profiles.split(",") if p.strip())


@lru_cache
def get_settings() -> SimulatorSettings:
    """The settings of this process, read once (never at import time)."""
    return SimulatorSettings()
