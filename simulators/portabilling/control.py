"""The control API's test half: the statuses recorded, the events and their deliveries, and faults
(`/_sim/status`, `/_sim/events`, `/_sim/faults`; the counts, `/_sim/stats`, are served as every
simulator's). No auth: the simulator listens on loopback, like the CMMS simulator's control API."""

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict

from simulators.portabilling.deps import SimDep, StatusRecord
from simulators.portabilling.events import EventView
from simulators.portabilling.faults import FaultChange, FaultState

router = APIRouter(prefix="/_sim")


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: Literal["fifo", "reverse"] = "fifo"


class Released(BaseModel):
    released: int  # deliveries that were waiting


@router.get("/status")
async def statuses(sim: SimDep, i_account: int | None = None) -> list[StatusRecord]:
    """The provisioning statuses the service reported (for one account), oldest first."""
    return [s for s in sim.statuses if i_account is None or s.i_account == i_account]


@router.get("/events")
async def events(sim: SimDep, i_account: int | None = None, i_customer: int | None = None) -> list[EventView]:
    """The events emitted (about one account or customer), oldest first, with their deliveries."""
    return [e.view() for e in sim.events.list(i_account=i_account, i_customer=i_customer)]


@router.post("/events/hold", status_code=status.HTTP_204_NO_CONTENT)
async def hold(sim: SimDep) -> None:
    """Start no delivery until released (events keep being emitted and queued)."""
    sim.events.hold()


@router.post("/events/release")
async def release(sim: SimDep, body: Release | None = None) -> Released:
    """Deliver what waits: in order (`fifo`), or `reverse`d, one at a time so that order is kept."""
    return Released(released=sim.events.release((body or Release()).order))


@router.post("/events/{i_event}/redeliver", responses={404: {}, 409: {}})
async def redeliver(i_event: int, sim: SimDep) -> EventView:
    """Send an already delivered event once more (a retry the receiver must recognise)."""
    try:
        return sim.events.redeliver(i_event).view()
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {i_event}") from None
    except ValueError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None


@router.post("/faults")
async def set_faults(change: FaultChange, sim: SimDep) -> FaultState:
    """Change the faults given (the others stay); `revoke_tokens` forgets every token issued."""
    given = change.model_dump(include=change.model_fields_set - {"revoke_tokens"}, exclude_none=True)
    sim.faults = sim.faults.model_copy(update=given)
    sim.sessions.refuse_all = sim.faults.sessions == "refused"
    if change.revoke_tokens:
        sim.sessions.revoke_all()
    return sim.faults


@router.get("/faults")
async def get_faults(sim: SimDep) -> FaultState:
    return sim.faults
