"""The CMMS provisioning wire format, shared by the worker's client and the simulator."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class CmmsAccount(BaseModel):
    """What billing sends to the CMMS for one account: `PUT /api/v1/accounts/{account_id}`.

    `messaging_enabled=None` leaves the CMMS's current messaging state as it is (enabled on create).
    """

    model_config = ConfigDict(extra="forbid")

    password: SecretStr
    imei: str | None = Field(default=None, pattern=r"^\d{15}$")
    profile: str
    domain: str
    messaging_enabled: bool | None = None
    blocked: bool = False


class CmmsRecord(BaseModel):
    """What the CMMS holds for one account (the password is never echoed back)."""

    account_id: str
    imei: str | None
    profile: str
    domain: str
    messaging_enabled: bool
    blocked: bool = False
    version: int
    updated_at: datetime | None = None  # when the record last changed


class DeviceCredentials(BaseModel):
    """What the app receives at first start: `POST /device/v1/provision {imei}`."""

    account_id: str
    password: str
    domain: str
    profile: str
    messaging_enabled: bool
    version: int
