"""The PortaBilling wire format: its JSON API's answers, the ESPF status and events, and what the client
makes of them. Shared by the client (`clients.portabilling.client`) and the PortaBilling simulator.

The wire models (`*Info`, `*Wire`) read PortaBilling's own spelling (`"Y"`/`"N"` flags, `bill_status`
letters, `h323_password`) and ignore the many fields we do not use; each turns into a result model
(`Pb*`) in plain Python types. Sources: PortaBilling's "Retrieving data from PortaBilling", "Sending
provisioning status for an account via ESPF API" and "Receiving provisioning events".
"""

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# The statuses PortaBilling's ESPF status API takes for an account's provisioning.
ProvisioningStatus = Literal["OK", "IN_PROGRESS", "RETRY", "FAILED"]
# The longest message the status API takes.
STATUS_MESSAGE_MAX = 4000
YesNo = Literal["Y", "N"]
# O open, I inactive (not yet activated), C closed (terminated).
BillStatus = Literal["O", "I", "C"]


def as_utc(moment: datetime) -> datetime:
    """A PortaBilling time in UTC: it writes UTC, with or without saying so."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- what the client returns ---


class PbAccount(BaseModel):
    """One PortaBilling account, as provisioning needs it. `service_password` is the SIP password."""

    model_config = ConfigDict(frozen=True)

    i_account: int
    id: str
    i_customer: int
    i_product: int
    blocked: bool
    closed: bool  # bill_status C: terminated
    inactive: bool  # bill_status I: not yet activated
    service_password: SecretStr
    expiration_date: date | None


class PbCustomer(BaseModel):
    """One PortaBilling customer."""

    model_config = ConfigDict(frozen=True)

    i_customer: int
    name: str
    blocked: bool


class PbProduct(BaseModel):
    """One PortaBilling product; `messaging_push_events`: its messaging service policy pushes events."""

    model_config = ConfigDict(frozen=True)

    i_product: int
    name: str
    messaging_push_events: bool


class PbWallet(BaseModel):
    """One service wallet entry (one top-up): units left and when they lapse (UTC; None: never)."""

    model_config = ConfigDict(frozen=True)

    service: str
    balance: int
    expires_at: datetime | None

    def is_live(self, now: datetime) -> bool:
        """Whether it still holds units that can be spent at `now` (PortaBilling lists spent and lapsed
        entries too: the reader decides)."""
        return self.balance > 0 and (self.expires_at is None or self.expires_at > now)


# --- the JSON API's answers, as PortaBilling spells them ---


class LoginAnswer(BaseModel):
    """`Session/login`. Only the access token is used: a new login replaces an expiring session."""

    access_token: SecretStr
    expires_at: datetime

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class Fault(BaseModel):
    """A JSON API fault (PortaBilling answers faults with HTTP 500)."""

    faultcode: str
    faultstring: str = ""


class AccountInfo(BaseModel):
    """`Account/get_account_info`'s `account_info`."""

    i_account: int
    id: str
    i_customer: int
    i_product: int
    blocked: YesNo
    bill_status: BillStatus
    h323_password: SecretStr
    expiration_date: date | None = None

    def account(self) -> PbAccount:
        return PbAccount(
            i_account=self.i_account,
            id=self.id,
            i_customer=self.i_customer,
            i_product=self.i_product,
            blocked=self.blocked == "Y",
            closed=self.bill_status == "C",
            inactive=self.bill_status == "I",
            service_password=self.h323_password,
            expiration_date=self.expiration_date,
        )


class AccountInfoAnswer(BaseModel):
    """No `account_info`: PortaBilling has no such account."""

    account_info: AccountInfo | None = None


class CustomFieldValue(BaseModel):
    name: str
    text_value: str | None = None


class CustomFieldsAnswer(BaseModel):
    """`Account/get_custom_fields_values` and `Customer/get_custom_fields_values`."""

    custom_fields_values: list[CustomFieldValue] = Field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Each field that holds a value, by name (a field without one is left out)."""
        return {field.name: field.text_value for field in self.custom_fields_values if field.text_value is not None}


class AccountListItem(BaseModel):
    i_account: int
    id: str
    bill_status: BillStatus


class AccountListAnswer(BaseModel):
    """`Account/get_account_list`: one page, in i_account order, closed accounts included."""

    account_list: list[AccountListItem] = Field(default_factory=list)
    total: int = 0


class CustomerInfo(BaseModel):
    i_customer: int
    name: str
    blocked: YesNo

    def customer(self) -> PbCustomer:
        return PbCustomer(i_customer=self.i_customer, name=self.name, blocked=self.blocked == "Y")


class CustomerInfoAnswer(BaseModel):
    """No `customer_info`: PortaBilling has no such customer."""

    customer_info: CustomerInfo | None = None


class ServicePolicy(BaseModel):
    service: str
    push_events: YesNo = "N"


class ProductInfo(BaseModel):
    i_product: int
    name: str
    service_policies: list[ServicePolicy] = Field(default_factory=list)

    def product(self) -> PbProduct:
        pushes = any(p.service == "messaging" and p.push_events == "Y" for p in self.service_policies)
        return PbProduct(i_product=self.i_product, name=self.name, messaging_push_events=pushes)


class ProductInfoAnswer(BaseModel):
    """No `product_info`: PortaBilling has no such product."""

    product_info: ProductInfo | None = None


class ServiceWalletWire(BaseModel):
    service: str
    balance: int
    expiration_date: datetime | None = None

    def wallet(self) -> PbWallet:
        expires = as_utc(self.expiration_date) if self.expiration_date is not None else None
        return PbWallet(service=self.service, balance=self.balance, expires_at=expires)


class ServiceWalletListAnswer(BaseModel):
    """`Account/get_service_wallet_list`: one entry per top-up."""

    service_wallet_list: list[ServiceWalletWire] = Field(default_factory=list)


# --- ESPF: status (us → PortaBilling) and events (PortaBilling → us) ---


class StatusReport(BaseModel):
    """`POST /espf/v1/account/i/<i_account>/status`."""

    model_config = ConfigDict(extra="forbid")

    status: ProvisioningStatus
    group: str = Field(min_length=1)
    message: str = Field(max_length=STATUS_MESSAGE_MAX)


class EspfEvent(BaseModel):
    """One ESPF event as PortaBilling POSTs it: `{"event_type": "Account/Blocked", "variables":
    {"i_event": "123", "i_account": "1000889"}}` (the variables' values are strings; customer events
    carry `i_customer` instead of `i_account`)."""

    event_type: str = Field(min_length=1, max_length=200)
    variables: dict[str, str]

    @field_validator("variables", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        # The docs' example sends strings, their variable tables say int: take either, keep text.
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value


class EventType:
    """The ESPF event types the simulator emits (see the wire spec; PortaBilling's docs list more).

    `Account/Id/Changed` is spelt as our wire spec has it; PortaBilling's "Events that ESPF handlers
    support" table writes `Account/ID/Changed`: a receiver should take both."""

    ACCOUNT_NEW = "Account/New"
    ACCOUNT_SERVICE_PASSWORD_CHANGED = "Account/ServicePassword/Changed"
    ACCOUNT_PASSWORD_CHANGED = "Account/Password/Changed"
    ACCOUNT_ID_CHANGED = "Account/Id/Changed"
    ACCOUNT_BLOCKED = "Account/Blocked"
    ACCOUNT_UNBLOCKED = "Account/Unblocked"
    ACCOUNT_CLOSED = "Account/Status/Closed"
    ACCOUNT_CUSTOM_FIELD_CHANGED = "Account/CustomField/Changed"
    ACCOUNT_PRODUCT_CHANGED = "Account/Product/Changed"
    ACCOUNT_MSG_QUOTA_EXCEEDED = "Account/Service/Msg/QuotaExceeded"
    ACCOUNT_FUNDS_APPEAR = "Account/AvailableFundsAppear"
    ACCOUNT_EXPIRATION_DATE_CHANGED = "Account/ExpirationDate/Changed"
    SUBSCRIBER_CREATED = "Subscriber/Created"
    SUBSCRIBER_UPDATED = "Subscriber/Updated"
    SUBSCRIBER_DELETED = "Subscriber/Deleted"
    CUSTOMER_CREATED = "Customer/Created"
    CUSTOMER_UPDATED = "Customer/Updated"
    CUSTOMER_DELETED = "Customer/Deleted"
    CUSTOMER_CUSTOM_FIELD_CHANGED = "Customer/CustomField/Changed"


# Only the latest queued event of these types per entity is delivered ("Receiving provisioning
# events"); `Customer/Status/*` stands for every type under it.
COALESCED_EVENT_TYPES = frozenset(
    {"Account/Service/Msg/QuotaExceeded", "Account/ProductAddon/Changed", "Account/Service/QuotaExceeded"}
)
COALESCED_EVENT_PREFIXES = ("Customer/Status/",)


def is_coalesced(event_type: str) -> bool:
    """Whether PortaBilling keeps only the latest queued event of this type per entity."""
    return event_type in COALESCED_EVENT_TYPES or event_type.startswith(COALESCED_EVENT_PREFIXES)
