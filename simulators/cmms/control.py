"""The test tool: `/_sim/faults`, `/_sim/accounts` and `/_sim/token` (no auth; the simulator listens
on loopback). `/_sim/stats` is served as every simulator's (`simulators.common.stats_routes`)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.cmms import CmmsRecord
from simulators.cmms.deps import SimDep
from simulators.cmms.faults import FaultSettings, FaultStatus
from simulators.cmms.store import ImeiConflict, StoredAccount

router = APIRouter(prefix="/_sim")

AccountId = Annotated[str, Path(min_length=1, max_length=128)]


class RawAccount(BaseModel):
    """`PUT /_sim/accounts/{id}`: a record as a CMMS-side mistake would leave it. No profile check and
    no version rules: the version is what is given (else the current one, or 1)."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=256)
    imei: str | None = Field(default=None, max_length=64)
    profile: str = Field(min_length=1, max_length=128)
    domain: str = Field(min_length=1, max_length=256)
    messaging_enabled: bool = True
    blocked: bool = False
    version: int | None = Field(default=None, ge=0)


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


@router.put("/accounts/{account_id}", responses={409: {}})
def put_raw_account(account_id: AccountId, account: RawAccount, sim: SimDep) -> CmmsRecord:
    """Write this record as it is, behind billing's back (drift for reconciliation to find)."""
    current = sim.store.get_account(account_id)
    version = account.version if account.version is not None else (current.version if current else 1)
    stored = StoredAccount(
        account_id=account_id,
        password=account.password,
        imei=account.imei,
        profile=account.profile,
        domain=account.domain,
        messaging_enabled=account.messaging_enabled,
        blocked=account.blocked,
        version=version,
        updated_at=datetime.now(UTC),
    )
    try:
        sim.store.put_raw(stored)
    except ImeiConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return stored.record()


@router.delete("/accounts/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def delete_raw_account(account_id: AccountId, sim: SimDep) -> Response:
    """Lose the record, behind billing's back."""
    if not sim.store.delete_account(account_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/token", status_code=status.HTTP_204_NO_CONTENT)
async def rotate_token(rotation: TokenRotation, sim: SimDep) -> Response:
    """Rotate the bearer token, as the CMMS's operators would: the old one is refused (401) from now on."""
    sim.token.value = rotation.token
    return Response(status_code=status.HTTP_204_NO_CONTENT)
