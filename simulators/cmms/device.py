"""The device side: what the app does at first start (no auth: the IMEI is the key)."""

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from contracts.cmms import DeviceCredentials
from simulators.cmms.deps import SimDep

router = APIRouter(prefix="/device/v1")


class ProvisionRequest(BaseModel):
    """`POST /device/v1/provision`."""

    imei: str = Field(pattern=r"^\d{15}$")


@router.post("/provision", responses={403: {}, 404: {}})
def provision(body: ProvisionRequest, sim: SimDep) -> DeviceCredentials:
    """The credentials of the account holding this IMEI."""
    stored = sim.store.find_by_imei(body.imei)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown IMEI")
    if stored.blocked:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "account is blocked")
    return DeviceCredentials(
        account_id=stored.account_id,
        password=stored.password,
        domain=stored.domain,
        profile=stored.profile,
        messaging_enabled=stored.messaging_enabled,
        version=stored.version,
    )
