"""What the routers share: the process's state, the bearer check and the fault gate."""

import asyncio
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from simulators.cmms.faults import Faults
from simulators.cmms.settings import SimulatorSettings
from simulators.cmms.smsc_state import Smsc
from simulators.cmms.stats import Stats
from simulators.cmms.store import Store


class BearerToken:
    """The token the provisioning API accepts: CMMS_TOKEN at start, replaced by `PUT /_sim/token`
    (the CMMS's operators rotating it)."""

    def __init__(self, value: str) -> None:
        self.value = value


@dataclass(frozen=True)
class SimState:
    """Everything one simulator process holds, kept on `app.state.sim`."""

    settings: SimulatorSettings
    store: Store
    faults: Faults
    stats: Stats
    token: BearerToken
    smsc: Smsc


def get_sim(request: Request) -> SimState:
    """The running simulator's state."""
    sim: SimState = request.app.state.sim
    return sim


SimDep = Annotated[SimState, Depends(get_sim)]

_bearer = HTTPBearer(auto_error=False)


def require_token(sim: SimDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 unless the request carries `Authorization: Bearer <the current token>`."""
    expected = sim.token.value.encode()
    given = credentials.credentials.encode() if credentials else b""
    # Constant-time, so the token cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(given, expected):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def provisioning_gate(sim: SimDep) -> None:
    """Apply the injected faults to one provisioning call, and count it when it gets through."""
    if sim.faults.latency_seconds > 0:
        await asyncio.sleep(sim.faults.latency_seconds)
    rejection = sim.faults.check()
    if rejection is not None:
        headers = {"Retry-After": str(rejection.retry_after)} if rejection.retry_after is not None else None
        raise HTTPException(rejection.status, rejection.detail, headers=headers)
    sim.stats.record_call()
