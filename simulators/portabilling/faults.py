"""Faults a test or a demo switches on at run time (`POST /_sim/faults`); a restart clears them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FaultChange(BaseModel):
    """`POST /_sim/faults`: only the fields given change.

        `api`: the JSON API (login included) answers 503 while `down`, or only after `slow_seconds` while
        `slow`; `status_api`: the ESPF status API answers 503 while `down`, and 400 to every status while
    `refusing` (as for a group PortaBilling has not registered); `revoke_tokens`: every token
        issued so far is forgotten (the next call is refused and must log in again); `sessions: refused`:
        logins succeed but every token is refused (an API user without access)."""

    model_config = ConfigDict(extra="forbid")

    api: Literal["down", "slow", "ok"] | None = None
    status_api: Literal["down", "refusing", "ok"] | None = None
    slow_seconds: float | None = Field(default=None, ge=0, le=600)
    sessions: Literal["refused", "ok"] | None = None
    revoke_tokens: bool = False


class FaultState(BaseModel):
    """`GET /_sim/faults` (and the answer to a change): what is set now."""

    api: Literal["down", "slow", "ok"] = "ok"
    status_api: Literal["down", "refusing", "ok"] = "ok"
    slow_seconds: float = 3.0
    sessions: Literal["refused", "ok"] = "ok"
