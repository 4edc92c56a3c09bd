"""Fault injection for the provisioning API: outage, random errors, latency and a rate limit.

Runtime state only (a restart clears it). Everything here runs on the event loop, so no lock.
"""

import math
import random
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# The OS's generator: ruff flags `random.random()`, and the cost is nothing here.
_dice = random.SystemRandom()


class FaultSettings(BaseModel):
    """`PUT /_sim/faults`: replaces whatever was set; an absent field means that fault is off."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0, le=300_000)
    outage_seconds: float = Field(default=0.0, ge=0.0)
    rate_limit_per_second: int | None = Field(default=None, ge=1)


class FaultStatus(FaultSettings):
    """`GET /_sim/faults`: what is set, and how long the outage still lasts."""

    outage_remaining_seconds: float


@dataclass(frozen=True)
class Rejection:
    """A provisioning call answered by a fault instead of being served."""

    status: int
    detail: str
    retry_after: int | None = None


class Faults:
    """The faults currently injected."""

    def __init__(self) -> None:
        self._settings = FaultSettings()
        self._outage_until = 0.0
        self._window_second = 0
        self._window_count = 0

    def set(self, settings: FaultSettings) -> None:
        """Inject these faults; an outage is measured from now."""
        self._settings = settings
        self._outage_until = time.monotonic() + settings.outage_seconds
        self._window_count = 0

    def clear(self) -> None:
        """Back to a healthy CMMS."""
        self.set(FaultSettings())

    def status(self) -> FaultStatus:
        """What is set."""
        return FaultStatus(**self._settings.model_dump(), outage_remaining_seconds=round(self._outage_remaining(), 3))

    @property
    def latency_seconds(self) -> float:
        """How long each provisioning call is delayed."""
        return self._settings.latency_ms / 1000

    def check(self) -> Rejection | None:
        """Decide one provisioning call: None lets it through."""
        remaining = self._outage_remaining()
        if remaining > 0:
            return Rejection(503, "CMMS unavailable (simulated outage)", retry_after=math.ceil(remaining))
        limit = self._settings.rate_limit_per_second
        if limit is not None:
            # A fixed window on the wall-clock second, the same second `Stats` counts in.
            second = int(time.time())
            if second != self._window_second:
                self._window_second, self._window_count = second, 0
            if self._window_count >= limit:
                return Rejection(429, f"rate limit of {limit} calls per second exceeded", retry_after=1)
            self._window_count += 1
        if self._settings.error_rate > 0 and _dice.random() < self._settings.error_rate:
            return Rejection(500, "internal error (simulated)")
        return None

    def _outage_remaining(self) -> float:
        return max(0.0, self._outage_until - time.monotonic())
