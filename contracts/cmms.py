"""The CMMS provisioning wire format, shared by the worker's client and the simulator."""

import hashlib
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


# The most records one `GET /api/v1/accounts` page carries.
CMMS_PAGE_MAX = 1000


def password_digest(account_id: str, password: str) -> str:
    """How a record shows its password without giving it away: SHA-256 over the account id and the
    password, so that billing can tell whether the CMMS holds the password it should (reconciliation)."""
    return "sha256:" + hashlib.sha256(f"{account_id}\0{password}".encode()).hexdigest()


class CmmsRecord(BaseModel):
    """What the CMMS holds for one account (the password is never echoed back, only its digest)."""

    account_id: str
    imei: str | None
    profile: str
    domain: str
    messaging_enabled: bool
    blocked: bool = False
    version: int
    updated_at: datetime | None = None  # when the record last changed
    password_digest: str | None = None  # `password_digest(account_id, password)`


class CmmsPage(BaseModel):
    """`GET /api/v1/accounts?after=<account_id>&limit=<n>`: records in account id order."""

    accounts: list[CmmsRecord]
    next: str | None  # the `after` of the next page; None on the last one


class DeviceCredentials(BaseModel):
    """What the app receives at first start: `POST /device/v1/provision {imei}`."""

    account_id: str
    password: str
    domain: str
    profile: str
    messaging_enabled: bool
    version: int
