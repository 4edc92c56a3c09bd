"""FastAPI dependencies: the app's shared state, a database session, the Temporal client, the caller.

All `async def`, even those that do not await: FastAPI runs a plain `def` dependency in its thread
pool, a hop to another thread and back on every request for nothing."""

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.auth import Caller, KeyRing, Role
from api.problems import Problem
from billing.db import SessionMaker, snapshot
from core.settings import Settings
from services.outbox import Outbox
from services.signups import Signups


@dataclass
class AppState:
    """What the API holds for its lifetime: built once in the lifespan, never at import time."""

    settings: Settings
    sessions: SessionMaker
    temporal: Client
    keys: KeyRing
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


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


async def get_read_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with snapshot(state.sessions) as session:
        yield session


async def get_sessions(state: StateDep) -> SessionMaker:
    return state.sessions


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# The services' way into billing (and, after a commit, Temporal).
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
# For handlers that call Temporal too: open short sessions, closed before the call.
SessionsDep = Annotated[SessionMaker, Depends(get_sessions)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
# For handlers that only read: never waits for, nor holds up, a writer (see `billing.db.snapshot`).
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]

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


def require(role: Role) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency that admits callers holding `role` (or admin); for a router's `dependencies`."""

    async def check(caller: CallerDep) -> Caller:
        if not caller.may(role):
            raise Problem(403, f"this call needs the {role.value} role")
        return caller

    return check


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, detail)
    problem.headers["WWW-Authenticate"] = "Bearer"
    return problem
