"""Faults a test or a demo switches on at run time (`POST /_sim/faults`); a restart clears them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The faults of `fixtures/session_faults.json`.
SessionFault = Literal[
    "Server.Session.check_auth.auth_failed",
    "Client.check_auth.envelope_missed",
    "Client.Session.check_auth.failed_to_process_jwt",
    "Client.Session.check_auth.failed_to_process_access_token",
]


class FaultChange(BaseModel):
    """`POST /_sim/faults`: only the fields given change.

    `api`: the JSON API (login included) answers 503 while `down`, or only after `slow_seconds` while
    `slow`; `status_api`: the ESPF status API answers 503 while `down`, and 400 to every status while
    `refusing` (as for a group PortaBilling has not registered); `revoke_tokens`: every token issued so
    far is forgotten (the next call is refused and must log in again); `sessions: refused`: logins
    succeed but every token is refused (an API user without access); `session_fault`: the fault a
    refused token is answered with (with `revoke_tokens`: a session PortaBilling dropped early, after
    24 h unused or revoked; `fixtures/session_faults.json`); `hidden_fields`: what the API user's role
    may not read, left out of the answers (`h323_password`); `undefined_custom_fields`: custom fields the
    installation does not define, left out of `custom_fields_values`."""

    model_config = ConfigDict(extra="forbid")

    api: Literal["down", "slow", "ok"] | None = None
    status_api: Literal["down", "refusing", "ok"] | None = None
    slow_seconds: float | None = Field(default=None, ge=0, le=600)
    sessions: Literal["refused", "ok"] | None = None
    revoke_tokens: bool = False
    session_fault: SessionFault | None = None
    hidden_fields: list[Literal["h323_password"]] | None = None
    undefined_custom_fields: list[str] | None = None


class FaultState(BaseModel):
    """`GET /_sim/faults` (and the answer to a change): what is set now."""

    api: Literal["down", "slow", "ok"] = "ok"
    status_api: Literal["down", "refusing", "ok"] = "ok"
    slow_seconds: float = 3.0
    sessions: Literal["refused", "ok"] = "ok"
    session_fault: SessionFault = "Server.Session.check_auth.auth_failed"
    hidden_fields: list[Literal["h323_password"]] = Field(default_factory=list)
    undefined_custom_fields: list[str] = Field(default_factory=list)
