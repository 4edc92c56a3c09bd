"""The one provisioning step every use case shares: bring the CMMS in line with an account."""

from pydantic import BaseModel

# The ApplicationError type of a permanent CMMS refusal (a 4xx): never retried.
CMMS_REJECTED = "CmmsRejected"


class ProvisionAccountInput(BaseModel):
    account_id: str


class ProvisionAccountResult(BaseModel):
    account_id: str
    cmms_version: int
