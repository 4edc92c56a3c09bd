"""FastAPI dependencies: the app's shared state, the outbox (the services' way into billing), the
Temporal client, the signups, the caller.

All `async def`, even those that do not await: FastAPI runs a plain `def` dependency in its thread
pool, a hop to another thread and back on every request for nothing."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.auth import ApiKeys, Caller, Role
from api.problems import Problem
from core.settings import Settings
from services.outbox import Outbox
from services.signups import Signups


@dataclass
class AppState:
    """What the API holds for its lifetime: built once in the lifespan, never at import time."""

    settings: Settings
    temporal: Client
    keys: ApiKeys
    outbox: Outbox  # every change goes through it: billing's transaction, and what Temporal must learn
    signups: Signups  # the signup calls, with the rate limits every API process shares


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.services
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


async def get_temporal(state: StateDep) -> Client:
    return state.temporal


async def get_outbox(state: StateDep) -> Outbox:
    return state.outbox


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# The services' way into billing (and, after a commit, Temporal).
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
TemporalDep = Annotated[Client, Depends(get_temporal)]

_bearer = HTTPBearer(auto_error=False, description="An API key from the API_KEYS setting")


async def get_caller(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    if credentials is None:
        raise _unauthorized("an Authorization: Bearer <key> header is required")
    caller = state.keys.identify(credentials.credentials)
    if caller is None:
        raise _unauthorized("the API key is not valid")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def builtin_billing(caller: CallerDep, settings: SettingsDep) -> None:
    """Beside PortaBilling (`BILLING_SOURCE=portabilling`) customers, accounts, products and wallets are
    PortaBilling's: the built-in billing's routes refuse, once the caller is known (so that nobody
    without a key learns which billing this is)."""
    if settings.billing_source != "builtin":
        raise Problem(409, "billing is PortaBilling here (BILLING_SOURCE=portabilling): make this change there")


class RoleCheck:
    """A dependency that admits callers holding `role` (or admin): a class, so that the OpenAPI document
    (api.openapi) can tell from a route's dependencies that it may answer 403."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, caller: CallerDep) -> Caller:
        if not caller.may(self.role):
            raise Problem(403, f"this call needs the {self.role.value} role")
        return caller


def require(role: Role) -> RoleCheck:
    """A dependency that admits callers holding `role` (or admin); for a router's `dependencies`."""
    return RoleCheck(role)


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, detail)
    problem.headers["WWW-Authenticate"] = "Bearer"
    return problem
