"""The test tool: `/_sim/faults`, `/_sim/stats` and `/_sim/token` (no auth; the simulator listens on loopback)."""

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from simulator.deps import SimDep
from simulator.faults import FaultSettings, FaultStatus
from simulator.stats import StatsView

router = APIRouter(prefix="/_sim")


class TokenRotation(BaseModel):
    """`PUT /_sim/token`: the provisioning API's new bearer token."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=512)


@router.put("/faults")
async def set_faults(faults: FaultSettings, sim: SimDep) -> FaultStatus:
    """Inject these faults (replacing any set before); an outage starts now."""
    sim.faults.set(faults)
    return sim.faults.status()


@router.get("/faults")
async def get_faults(sim: SimDep) -> FaultStatus:
    """What is set, with the outage's remaining seconds."""
    return sim.faults.status()


@router.delete("/faults", status_code=status.HTTP_204_NO_CONTENT)
async def clear_faults(sim: SimDep) -> Response:
    """Back to a healthy CMMS."""
    sim.faults.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/stats")
async def get_stats(sim: SimDep) -> StatsView:
    """Provisioning calls served, in total and per wall-clock second, and the writes among them."""
    return sim.stats.view()


@router.delete("/stats", status_code=status.HTTP_204_NO_CONTENT)
async def reset_stats(sim: SimDep) -> Response:
    """Start counting afresh."""
    sim.stats.reset()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/token", status_code=status.HTTP_204_NO_CONTENT)
async def rotate_token(rotation: TokenRotation, sim: SimDep) -> Response:
    """Rotate the bearer token, as the CMMS's operators would: the old one is refused (401) from now on."""
    sim.token.value = rotation.token
    return Response(status_code=status.HTTP_204_NO_CONTENT)
