"""What the routers share: the process's state, kept on `app.state.sim`."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel

from contracts.portabilling import ProvisioningStatus
from simulators.portabilling.events import EventBus
from simulators.portabilling.faults import FaultState
from simulators.portabilling.sessions import Sessions
from simulators.portabilling.settings import PortaBillingSimSettings
from simulators.portabilling.stats import Stats
from simulators.portabilling.store import Store


class StatusRecord(BaseModel):
    """One provisioning status the service reported (`GET /_sim/status`)."""

    i_account: int
    status: ProvisioningStatus
    group: str
    message: str
    at: datetime


@dataclass
class SimState:
    """Everything one simulator process holds. Every route is `async`: all of it runs on the event loop."""

    settings: PortaBillingSimSettings
    store: Store
    sessions: Sessions
    events: EventBus
    faults: FaultState = field(default_factory=FaultState)
    stats: Stats = field(default_factory=Stats)
    statuses: list[StatusRecord] = field(default_factory=list)


def get_sim(request: Request) -> SimState:
    sim: SimState = request.app.state.sim
    return sim


SimDep = Annotated[SimState, Depends(get_sim)]


def bearer_token(request: Request) -> str | None:
    """The bearer token the request carries, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
